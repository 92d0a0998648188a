"""Small server-side SVG charts (no JavaScript, no CDN): stacked bars per hour, and a Pareto."""

from __future__ import annotations

from markupsafe import Markup, escape

COLOURS = {"pass": "#1f9d55", "fail": "#d62828", "review": "#e09b00"}


def stacked_bars(rows: list[dict], label: str, keys=("pass", "review", "fail"), width=900, height=220) -> Markup:
    """One bar per row (e.g. per hour), stacked by verdict kind; labels under every few bars."""
    if not rows:
        return Markup('<p class="muted">No inspections in this window.</p>')
    top = max(sum(r[k] for k in keys) for r in rows) or 1
    pad_l, pad_b = 40, 30
    bw = (width - pad_l) / len(rows)
    every = max(1, len(rows) // 12)
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="verdicts per {escape(label)}">',
           f'<text x="4" y="12" class="axis">{top}</text><text x="4" y="{height - pad_b}" class="axis">0</text>']
    for i, r in enumerate(rows):
        x, y = pad_l + i * bw, height - pad_b
        for k in keys:
            h = (height - pad_b - 10) * r[k] / top
            if h > 0:
                out.append(f'<rect x="{x:.1f}" y="{y - h:.1f}" width="{max(bw - 2, 1):.1f}" height="{h:.1f}" '
                           f'fill="{COLOURS[k]}"><title>{escape(r[label])}: {r[k]} {k}</title></rect>')
                y -= h
        if i % every == 0:
            out.append(f'<text x="{x:.1f}" y="{height - 10}" class="axis">{escape(str(r[label])[-5:])}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def pareto(rows: list[dict], width=900, height=240) -> Markup:
    """Defect types by parts affected, most first, with the cumulative share as a line."""
    if not rows:
        return Markup('<p class="muted">No VLM findings in this window.</p>')
    top = rows[0]["parts"] or 1
    pad_l, pad_b, pad_t = 40, 40, 10
    bw = (width - pad_l - 40) / len(rows)
    plot_h = height - pad_b - pad_t
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="Pareto of defect types">']
    pts = []
    for i, r in enumerate(rows):
        x = pad_l + i * bw
        h = plot_h * r["parts"] / top
        out.append(f'<rect class="pareto-bar" x="{x:.1f}" y="{pad_t + plot_h - h:.1f}" width="{max(bw - 6, 1):.1f}" '
                   f'height="{h:.1f}" fill="#d62828"><title>{escape(r["defect_type"])}: {r["parts"]} parts</title></rect>')
        out.append(f'<text x="{x:.1f}" y="{height - 22}" class="axis">{escape(r["defect_type"])}</text>')
        out.append(f'<text x="{x:.1f}" y="{pad_t + plot_h - h - 3:.1f}" class="axis">{r["parts"]}</text>')
        pts.append(f'{x + bw / 2:.1f},{pad_t + plot_h * (1 - r["cumulative"]):.1f}')
    out.append(f'<polyline class="pareto-line" points="{" ".join(pts)}" fill="none" stroke="#17202a" stroke-width="2"/>')
    out.append(f'<text x="{width - 36}" y="{pad_t + 10}" class="axis">100%</text></svg>')
    return Markup("".join(out))
