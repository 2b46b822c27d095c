"""Rebuild the hub's Khmer web fonts: Noto Sans Khmer, regular and bold, cut to the Khmer script.

Headings and labels need a Khmer face with a real bold, and phones may have none, so the hub
serves its own. Only the Khmer block (and the few joiners and marks Khmer text uses) is kept,
with every shaping feature, so each weight stays under 60 KB; Latin text keeps the system face.

    apt-get install fonts-noto-core     # provides NotoSansKhmer-{Regular,Bold}.ttf (SIL OFL 1.1)
    python tools/subset_khmer_font.py [/usr/share/fonts/truetype/noto]
"""

import sys
from pathlib import Path

from fontTools import subset

SOURCE = Path("/usr/share/fonts/truetype/noto")
TARGET = Path(__file__).resolve().parent.parent / "referral_hub" / "static" / "fonts"
# Khmer, Khmer symbols, the zero-width space, joiners and the dotted circle shaping may insert.
UNICODES = "U+1780-17FF,U+19E0-19FF,U+200B-200D,U+25CC"
WEIGHTS = ("Regular", "Bold")
LIMIT = 60 * 1024


def subset_weight(source, weight):
    """Write NotoSansKhmer-<weight>.woff2 and return its size in bytes."""
    target = TARGET / f"NotoSansKhmer-{weight}.woff2"
    subset.main(
        [
            str(source / f"NotoSansKhmer-{weight}.ttf"),
            f"--unicodes={UNICODES}",
            "--layout-features=*",
            "--flavor=woff2",
            "--no-hinting",
            "--desubroutinize",
            f"--output-file={target}",
        ]
    )
    return target.stat().st_size


def main(argv):
    source = Path(argv[0]) if argv else SOURCE
    for weight in WEIGHTS:
        size = subset_weight(source, weight)
        print(f"NotoSansKhmer-{weight}.woff2: {size} bytes")
        if size > LIMIT:
            sys.exit(f"NotoSansKhmer-{weight}.woff2 is over {LIMIT} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
