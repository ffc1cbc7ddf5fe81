"""`alvh signal` output: the day's decisions as text (console), a JSON document and one HTML page."""
from __future__ import annotations

import dataclasses
import datetime as dt
import html
import math

from analysis.signal import CondorLine, DaySignal, OrderLine
from analysis.tables import html_page, html_table, text_table

TIMES = {"open": "09:30", "close": "16:00"}


def _money(x: float) -> str:
    return f"{x:,.0f}"


def _strikes(c: CondorLine) -> str:
    lp, sp, sc, lc = c.strikes
    return f"P {lp:g}/{sp:g}  C {sc:g}/{lc:g}"


def _limit(limit: float | None) -> str:
    if limit is None:
        return "no limit (market)"
    return f"limit {abs(limit):.2f} {'credit' if limit < 0 else 'debit'}"


def order_text(o: OrderLine) -> str:
    if len(o.legs) == 1:
        label, ratio = o.legs[0]
        what = f"{'BUY' if ratio > 0 else 'SELL'} {o.quantity} {label}"
    else:
        legs = ", ".join(f"{r:+d} {label}" for label, r in o.legs)
        what = f"{o.quantity} x [{legs}]"
    return f"{TIMES[o.phase]} {o.book} {o.purpose}: {what}, {_limit(o.limit)} ({o.status})"


def condor_rows(sig: DaySignal) -> tuple[list[list[str]], list[list[str]]]:
    closes = [[c.root, str(c.expiry), _strikes(c), str(c.quantity),
               f"{c.entry_date} for {c.credit:.2f}" if c.entry_date else "",
               _limit(c.limit) if c.intent_id else "settles (no order)", c.reason] for c in sig.condor_closes]
    opens = [[c.root, str(c.expiry), _strikes(c), str(c.quantity), _limit(c.limit), f"{c.credit:.2f}",
              _money((max(c.strikes[1] - c.strikes[0], c.strikes[3] - c.strikes[2]) - c.credit) * 100)]
             for c in sig.condor_opens]
    return closes, opens


CLOSE_HEADER = ["root", "expiry", "strikes", "qty", "opened", "order", "why"]
OPEN_HEADER = ["root", "expiry", "strikes", "qty", "order", "model mid credit", "max loss per condor"]
LAYER_HEADER = ["layer", "on at", "off below", "yesterday", "today", "level", "instrument", "size (units)",
                "holds after today"]
POSITION_HEADER = ["book", "instrument", "held at the start", "target after today", "change", "by orders"]


def layer_rows(sig: DaySignal) -> list[list[str]]:
    rows = []
    for la in sig.layers:
        today = ("on" if la.is_on else "off") + (" (switched today)" if la.is_on != la.was_on else "")
        holds = ", ".join(f"{q:+d} {label}" for label, q in la.contracts) or (
            "nothing (the size rounds to 0 contracts)" if la.is_on and la.units > 0 else "nothing")
        rows.append([la.name, f"{la.on_at:g}", f"{la.off_below:g}", "on" if la.was_on else "off", today,
                     f"{la.level:g}", la.holding or "-", f"{la.units:.2f}", holds])
    return rows


def position_rows(sig: DaySignal) -> list[list[str]]:
    return [[p.book, p.instrument, str(p.held), str(p.target), f"{p.target - p.held:+d}" if p.target != p.held else "",
             f"{p.traded:+d}" if p.traded else ("settled" if p.target != p.held else "")] for p in sig.positions]


def _signal_line(sig: DaySignal) -> str:
    if not sig.layers:
        return "no layered hedge configured"
    gates = f"; gates {', '.join(sig.gates)}" if sig.gates else ""
    value = f"{sig.signal_value:.2f}" if math.isfinite(sig.signal_value) else "n/a"
    return f"signal {sig.hedge_signal} = {value} at the close{gates}"


def format_text(sig: DaySignal) -> str:
    out = [(f"alvh signal for {sig.day:%a %Y-%m-%d}: {sig.config} (history from {sig.history_start}; decisions on "
           f"the day's open 09:30 and close 16:00 prints, which the daemon takes at 09:31 and 15:45)"),
           (f"SPX {sig.spx:,.2f}  VIX {sig.vix:.2f} at the close; equity {_money(sig.equity_start)} at the start of the "
           f"day, {_money(sig.equity_end)} after it"), ""]
    closes, opens = condor_rows(sig)
    out.append(f"Condors to close ({len(closes)})")
    out.append(text_table(closes, CLOSE_HEADER) if closes else "  none")
    out.append("")
    out.append(f"Condors to open ({len(opens)})")
    out.append(text_table(opens, OPEN_HEADER) if opens else "  none")
    out.append("")
    out.append(f"Hedge layers: {_signal_line(sig)}")
    if sig.layers:
        out.append(text_table(layer_rows(sig), LAYER_HEADER))
    out.append("")
    out.append("Positions: held at the start of the day -> target after today's orders")
    rows = position_rows(sig)
    out.append(text_table(rows, POSITION_HEADER) if rows else "  none")
    out.append("")
    out.append(f"Orders ({len(sig.orders)}; limits per unit, the status is the replay's simulated fill)")
    out += [f"  {order_text(o)}" for o in sig.orders] or ["  none"]
    return "\n".join(out)


def to_json(sig: DaySignal) -> dict:
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, (dt.date, dt.datetime)):
            return v.isoformat()
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    doc = clean(dataclasses.asdict(sig))
    doc["orders_text"] = [order_text(o) for o in sig.orders]
    return doc


def write_html(sig: DaySignal) -> str:
    closes, opens = condor_rows(sig)
    body = [f"<h1>alvh signal for {sig.day:%a %Y-%m-%d}</h1>",
            (f"<p>{html.escape(sig.config)}, history from {sig.history_start}. Decisions on the day's open (09:30) "
            f"and close (16:00) prints; the daemon takes them at 09:31 and 15:45. SPX {sig.spx:,.2f}, VIX "
            f"{sig.vix:.2f} at the close; equity {_money(sig.equity_start)} at the start of the day, "
            f"{_money(sig.equity_end)} after it.</p>"),
            f"<h2>Condors to close ({len(closes)})</h2>", html_table(CLOSE_HEADER, closes) if closes else "<p>none</p>",
            f"<h2>Condors to open ({len(opens)})</h2>", html_table(OPEN_HEADER, opens) if opens else "<p>none</p>",
            f"<h2>Hedge layers</h2><p>{html.escape(_signal_line(sig))}</p>"]
    if sig.layers:
        body.append(html_table(LAYER_HEADER, layer_rows(sig)))
    rows = position_rows(sig)
    body += ["<h2>Positions: held at the start of the day, target after today's orders</h2>",
             html_table(POSITION_HEADER, rows) if rows else "<p>none</p>",
             f"<h2>Orders ({len(sig.orders)})</h2><ul>"]
    body += [f"<li><code>{html.escape(order_text(o))}</code></li>" for o in sig.orders] or ["<li>none</li>"]
    body.append("</ul>")
    return html_page(f"alvh signal {sig.day}", body)
