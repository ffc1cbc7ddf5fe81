"""Tables for the reports: aligned plain text (console, .txt) and HTML, and the one page shell both HTML reports
(verdict, signal) use."""
from __future__ import annotations

import html
import math

PAGE_CSS = ("body{font-family:system-ui,sans-serif;max-width:1250px;margin:1.2em auto;color:#222}"
            "table{border-collapse:collapse;font-size:13px;margin:.6em 0}th,td{border:1px solid #ccc;padding:3px 7px;"
            "text-align:right}th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}"
            "figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}figcaption{font-size:12px;color:#666}"
            "li{margin:.2em 0}code{background:#f5f5f5;padding:0 3px}")


def pct(x, nd=1) -> str:
    return "n/a" if x is None or not isinstance(x, (int, float)) or not math.isfinite(x) else f"{x:.{nd}f}%"


def num(x, nd=2) -> str:
    return "n/a" if x is None or not isinstance(x, (int, float)) or not math.isfinite(x) else f"{x:.{nd}f}"


def money(x) -> str:
    return "n/a" if x is None or not isinstance(x, (int, float)) or not math.isfinite(x) else f"{x:,.0f}"


def text_table(rows: list[list[str]], header: list[str], left: int = 1) -> str:
    """Columns aligned; the first `left` columns (names) to the left, the rest (numbers) to the right."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(header)]
    line = lambda r: "  ".join(str(c).rjust(w) if i >= left else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def html_table(header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = []
    for i, r in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_page(title: str, body: list[str], css: str = "") -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{PAGE_CSS}{css}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
