"""Bar charts as plain SVG drawn on the server: no script, no web font, readable at 360 px.

A chart has no viewBox: it takes the full width of its column and is never scaled, so its
text keeps its size (16 px) on a phone and on paper. Bars are drawn in percent of the width.
"""

from markupsafe import Markup

FONT_PX = 16
LABEL_CHARS = 34
BAR_PX = 18
LEGEND_PX = FONT_PX + 10  # one series a line: Khmer names are long
BAR_SPAN = 80  # percent of the width for the longest bar; the rest holds its value
COLORS = ("#114b5f", "#2e7d32", "#8a5a00")


def _short(label):
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _open(chart_id, title, height):
    return Markup(
        '<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        'aria-labelledby="{id}-title" width="100%" height="{h}" font-size="{font}">'
        '<title id="{id}-title">{title}</title>'
    ).format(id=chart_id, h=height, font=FONT_PX, title=title)


def _bar(top, value, peak, color, shown):
    width = BAR_SPAN * value / peak
    return Markup(
        '<rect x="0" y="{top}" width="{width}%" height="{bar}" fill="{color}"/>'
        '<text x="{width}%" dx="6" y="{text_y}" fill="currentColor">{shown}</text>'
    ).format(
        top=top,
        width=f"{width:.2f}" if value else "0",
        bar=BAR_PX,
        color=color,
        text_y=top + BAR_PX - 3,
        shown=shown,
    )


def bar_chart(chart_id, title, rows, format_value=str):
    """A horizontal bar per (label, value) row: the label above its bar, the value beside it.

    The chart is an image named by its title; each bar carries the full label and value in a
    <title> too. Long labels are cut with an ellipsis (the <title> keeps them).
    """
    return grouped_bar_chart(
        chart_id, title, [(label, [value]) for label, value in rows], [title], format_value
    )


def grouped_bar_chart(chart_id, title, rows, series, format_value=str):
    """Per (label, [value per series]) row, one bar for each series under the label. With
    more than one series a legend comes first, a line for each series in its own colour."""
    peak = max((value for _label, values in rows for value in values), default=0) or 1
    legend = series if len(series) > 1 else []
    row_px = FONT_PX + 8 + len(series) * (BAR_PX + 4) + 4
    top = LEGEND_PX * len(legend) + (8 if legend else 0)
    parts = [_open(chart_id, title, top + row_px * len(rows) + 4)]
    for index, name in enumerate(legend):
        parts.append(
            Markup(
                '<rect x="0" y="{y}" width="14" height="14" fill="{color}"/>'
                '<text x="20" y="{text_y}" fill="currentColor">{name}</text>'
            ).format(
                y=index * LEGEND_PX + 4,
                text_y=index * LEGEND_PX + 17,
                color=COLORS[index],
                name=name,
            )
        )
    for label, values in rows:
        described = ", ".join(
            f"{name}: {format_value(value)}" for name, value in zip(series, values, strict=True)
        )
        bars = Markup("").join(
            _bar(top + FONT_PX + 8 + i * (BAR_PX + 4), value, peak, COLORS[i], format_value(value))
            for i, value in enumerate(values)
        )
        parts.append(
            Markup(
                "<g><title>{label}: {described}</title>"
                '<text x="0" y="{label_y}" fill="currentColor">{short}</text>{bars}</g>'
            ).format(
                label=label,
                described=described if legend else format_value(values[0]),
                label_y=top + FONT_PX,
                short=_short(label),
                bars=bars,
            )
        )
        top += row_px
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
