"""What market series a strategy reads, so a run can say before it starts which data it lacks.

A strategy's parameters declare their needs (``CondorParams.needs()``, ``AlvhParams.needs()``, ...) in the
snapshot's vocabulary, never in file names: the data layer (adapters/data/requirements.py) maps each series to
the files it comes from and checks them. Names:

- a ``MarketQuotes`` field: ``spx``, ``vix``, ``vix9d``, ``vix3m``, ``vix6m``, ``vvix``, ``skew``, ``rate``
  (the T-bill rate), ``vx`` (the VX futures settlements; VIX options are priced on them);
- ``etp:SYMBOL``: a VIX ETP close (``etp:VIXY``);
- any other name: a daily series carried in ``MarketQuotes.extra`` (``cor1m``, ``dspx``, ``vixeq``, ``dff``).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeriesNeed:
    series: str
    why: str                     # who reads it, for the message that names a missing file
    whole_window: bool = True    # False: used where it exists (an ETP before its launch: the layer holds its blend)


def merge_needs(*groups: list[SeriesNeed]) -> list[SeriesNeed]:
    """One need per series, in first-seen order; a series any reader needs over the whole window keeps that."""
    out: dict[str, SeriesNeed] = {}
    for group in groups:
        for n in group:
            old = out.get(n.series)
            if old is None:
                out[n.series] = n
            elif n.whole_window and not old.whole_window:
                out[n.series] = SeriesNeed(n.series, n.why, True)
    return list(out.values())
