"""Bar charts as plain SVG drawn on the server: no script, no web font, readable at 360 px."""

from markupsafe import Markup

WIDTH = 320
ROW = 42
LABEL_CHARS = 44
VALUE_ROOM = 56
COLOR = "#114b5f"


def _short(label):
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def bar_chart(chart_id, title, rows, format_value=str):
    """A horizontal bar per (label, value) row: the label above its bar, the value beside it.

    The chart is an image named by its title; each bar carries the full label and value in a
    <title> too. Labels longer than the width are cut with an ellipsis (the <title> keeps them).
    """
    peak = max((value for _label, value in rows), default=0) or 1
    height = ROW * len(rows) + 4
    span = WIDTH - VALUE_ROOM
    parts = [
        Markup(
            '<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
            'aria-labelledby="{id}-title" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
            'font-size="13"><title id="{id}-title">{title}</title>'
        ).format(id=chart_id, w=WIDTH, h=height, title=title)
    ]
    for index, (label, value) in enumerate(rows):
        top = index * ROW
        width = max(round(span * value / peak), 1 if value else 0)
        parts.append(
            Markup(
                "<g><title>{label}: {shown}</title>"
                '<text x="0" y="{label_y}" fill="currentColor">{short}</text>'
                '<rect x="0" y="{bar_y}" width="{width}" height="16" fill="{color}"/>'
                '<text x="{value_x}" y="{value_y}" fill="currentColor">{shown}</text></g>'
            ).format(
                label=label,
                shown=format_value(value),
                short=_short(label),
                label_y=top + 14,
                bar_y=top + 20,
                width=width,
                color=COLOR,
                value_x=width + 6,
                value_y=top + 33,
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
