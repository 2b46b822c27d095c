"""The printed report as a PDF, made on the server with WeasyPrint (Pango lays out the Khmer
script with the system's Khmer fonts, so the PDF reads the same as the page)."""

from pathlib import Path

PRINT_CSS = "report-print.css"


def from_page(page, static_folder):
    """The HTML page as an A4 PDF, styled by the print stylesheet; nothing is fetched."""
    from weasyprint import CSS, HTML  # loads Pango: only when a PDF is asked for

    stylesheet = CSS(filename=str(Path(static_folder) / PRINT_CSS))
    return HTML(string=page, url_fetcher=_refuse).write_pdf(stylesheets=[stylesheet])


def _refuse(url, *args, **kwargs):
    """The page links nothing the PDF needs; a link must not make the server fetch it."""
    raise ValueError(f"not fetched: {url}")
