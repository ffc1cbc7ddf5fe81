"""Volatility episodes and the per-episode arithmetic of the verdict.

- ``load_episodes``: config/episodes.toml -> named episodes, the auto-detection rule, the claim bands and the
  verdict settings (typed; every error is one sentence naming the file and the key);
- ``detect_spikes``: spikes found by the documented rule (VIX > 25 and > 1.5x its trailing median);
- ``rule_recovery`` / ``window_family``: a named window's end by its rule (the first SPX close back at the start's
  close), checked against the file, and the family of window ends an exception is reported over;
- ``window_drawdown`` / ``window_change`` / ``reduction_pct`` / ``classify``: one episode's numbers.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, PrivateAttr, StrictBool, ValidationError, model_validator

from analysis.config_files import load_model
from config.errors import config_error
from engine.params import Params

# ---------------------------------------------------------------------------------------------------
# the episode file
# ---------------------------------------------------------------------------------------------------


class ClaimBands(Params):
    met: float = 35.0
    exceeded: float = 40.0

    @model_validator(mode="after")
    def _order(self):
        if self.exceeded < self.met:
            raise ValueError("exceeded must be at least met")
        return self


class DetectRule(Params):
    vix_min: float = Field(25.0, gt=0)
    median_mult: float = Field(1.5, gt=0)
    median_days: int = Field(60, ge=5)
    merge_gap: int = Field(20, ge=1)
    lookback: int = Field(60, ge=1)
    max_days: int = Field(250, ge=5)


class VerdictSettings(Params):
    ladders: int = Field(5, ge=1, le=5)
    default_scenario: str = "alvh"
    surfaces: str | None = None   # the surface ensemble file, relative to the episode file (None: one surface)
    # the baselines' [hedge] tables; kept as written (they go into verdict.json), checked by load_episodes
    vxth: dict[str, Any] = Field(default_factory=dict)
    spx_puts: dict[str, Any] = Field(default_factory=dict)


class EpisodeSpec(Params):
    name: str
    start: dt.date
    end: dt.date          # must be the rule's end: the first SPX close back at the start's close
    note: str = ""
    family: StrictBool = False   # the rule's window alone is not a fair reading: report over the window family

    @model_validator(mode="after")
    def _order(self):
        if self.end <= self.start:
            raise ValueError(f"episode {self.name!r} must end after it starts")
        return self


class EpisodeFile(Params):
    claim: ClaimBands = Field(default_factory=ClaimBands)
    detect: DetectRule = Field(default_factory=DetectRule)
    verdict: VerdictSettings = Field(default_factory=VerdictSettings)
    episode: list[EpisodeSpec] = Field(default_factory=list)
    _source: str = PrivateAttr("episodes.toml")


@dataclass(frozen=True)
class Episode:
    name: str
    start: pd.Timestamp
    end: pd.Timestamp
    note: str = ""
    source: str = "named"   # "named" | "auto"
    # the window family: (label, end) for every end the class is taken over, the rule's end first; () = the rule's
    # window alone. Filled from the data by episodes_in.
    windows: tuple[tuple[str, pd.Timestamp], ...] = ()
    trough: pd.Timestamp | None = None

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")

    def window_keys(self) -> list[tuple[str, str, pd.Timestamp]]:
        """(label, key of the run metrics' window, end) of every window the episode is read over, the rule's first;
        the rule's window is keyed by the episode's name."""
        if not self.windows:
            return [(RULE_END, self.name, self.end)]
        return [(lab, self.name if k == 0 else f"{self.name} @ {lab}", end)
                for k, (lab, end) in enumerate(self.windows)]


def load_episodes(path: str | Path | None = None) -> tuple[EpisodeFile, list[Episode]]:
    """The episode file and its named episodes. Raises config.errors.ConfigError."""
    from strategies.baselines import SpxPutParams, VxthParams

    spec, label = load_model(path, EpisodeFile, "episodes.toml")
    for key, model in (("vxth", VxthParams), ("spx_puts", SpxPutParams)):
        try:  # exactly the table the verdict's baseline scenario will be built from
            model.model_validate({"kind": key, **getattr(spec.verdict, key)})
        except ValidationError as e:
            raise config_error(label, e, prefix=f"verdict.{key}") from None
    spec._source = label
    eps = [Episode(e.name, pd.Timestamp(e.start), pd.Timestamp(e.end), e.note, "named") for e in spec.episode]
    return spec, eps


def surfaces_path(spec: EpisodeFile, episode_file: str | Path | None) -> Path | None:
    """[verdict] surfaces, relative to the episode file (None: not configured)."""
    if spec.verdict.surfaces is None:
        return None
    p = Path(spec.verdict.surfaces)
    return p if p.is_absolute() else Path(spec._source).parent / p


# ---------------------------------------------------------------------------------------------------
# window ends by rule, and the window family
# ---------------------------------------------------------------------------------------------------

RULE_END = "recovery"
FAMILY_VIX = 20.0          # "VIX back under 20": the first close after the trough that starts ...
FAMILY_VIX_SESSIONS = 5    # ... a run of this many closes below FAMILY_VIX
FAMILY_MONTHS = (3, 6, 12)  # trough + 3, 6 and 12 calendar months


def rule_recovery(spx: pd.Series, start: pd.Timestamp) -> pd.Timestamp | None:
    """The first SPX close after `start` back at (>=) the close on `start`; None if the data has none yet."""
    after = spx.loc[start:].iloc[1:]
    back = after[after >= spx.loc[start]]
    return back.index[0] if len(back) else None


def window_family(spx: pd.Series, vix: pd.Series, start: pd.Timestamp,
                  end: pd.Timestamp) -> tuple[tuple[tuple[str, pd.Timestamp], ...], pd.Timestamp]:
    """The window ends an exception is read over, and the trough they hang on (the lowest SPX close in
    [start, end]): the rule's end (`end`), VIX back under 20 (the first close after the trough that starts a run of
    FAMILY_VIX_SESSIONS closes below FAMILY_VIX), the trough + 3, 6, 12 months. An end past the rule's is the rule's
    (after the recovery the unhedged book has no drawdown left to cut), repeats are dropped; sorted by date."""
    trough = spx.loc[start:end].idxmin()
    ends: list[tuple[str, pd.Timestamp]] = [(RULE_END, end)]
    v = vix.loc[trough:].dropna()
    under = (v < FAMILY_VIX).astype(int).rolling(FAMILY_VIX_SESSIONS).sum() == FAMILY_VIX_SESSIONS
    if under.any():
        ends.append((f"VIX<{FAMILY_VIX:g}", v.index[v.index.get_loc(under.idxmax()) - FAMILY_VIX_SESSIONS + 1]))
    ends += [(f"trough+{k}m", trough + pd.DateOffset(months=k)) for k in FAMILY_MONTHS]
    out: dict[pd.Timestamp, str] = {}
    for lab, day in ends:
        out.setdefault(min(pd.Timestamp(day), end), lab)
    rule = [(RULE_END, end)]
    return tuple(rule + sorted(((lab, day) for day, lab in out.items() if day != end), key=lambda x: x[1])), trough


def with_rule_windows(named: list[Episode], spec: EpisodeFile, spx: pd.Series, vix: pd.Series) -> list[Episode]:
    """The named episodes checked against their rule (each must end at the first SPX close back at its start's
    close, or after the data if that has not happened yet) and, for those marked `family`, their window family.
    Raises ValueError naming the file and the episode."""
    spx, vix = spx.dropna(), vix.dropna()
    family = {e.name: e.family for e in spec.episode}
    out = []
    for e in named:
        if e.start not in spx.index:
            raise ValueError(f"{spec._source}: episode {e.name!r}: start {e.start.date()} is not a session with an "
                             "SPX close")
        rec = rule_recovery(spx, e.start)
        if rec is not None and rec != e.end or rec is None and e.end <= spx.index[-1]:
            found = (f"the first SPX close back at the {e.start.date()} close {spx.loc[e.start]:.2f} is {rec.date()}"
                     if rec is not None else "SPX has not closed back at the start's close in the data")
            raise ValueError(f"{spec._source}: episode {e.name!r}: end {e.end.date()} is not the window's rule: "
                             f"{found} (mark an exception with family = true, never with a hand-picked end)")
        if family.get(e.name):
            windows, trough = window_family(spx, vix, e.start, e.end)
            e = Episode(e.name, e.start, e.end, e.note, e.source, windows, trough)
        out.append(e)
    return out


def detect_spikes(vix: pd.Series, spx: pd.Series, rule: DetectRule, named: list[Episode] = ()) -> list[Episode]:
    """Spikes found by the rule in DetectRule (see config/episodes.toml), skipping those whose first
    spike day falls inside a named window. Uses closes only; this is analysis, not a trading decision."""
    vix = vix.dropna()
    spx = spx.reindex(vix.index).ffill()
    med = vix.shift(1).rolling(rule.median_days, min_periods=rule.median_days).median()
    spike = (vix > rule.vix_min) & (vix > rule.median_mult * med)
    pos = np.flatnonzero(spike.to_numpy())
    if len(pos) == 0:
        return []
    groups: list[list[int]] = [[int(pos[0])]]
    for i in pos[1:]:
        if i - groups[-1][-1] <= rule.merge_gap:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    idx = vix.index
    s = spx.to_numpy()
    out = []
    for g in groups:
        first, last = g[0], g[-1]
        lo = max(first - rule.lookback, 0)
        peak_i = lo + int(np.nanargmax(s[lo:first + 1]))
        peak = s[peak_i]
        cap = min(first + rule.max_days, len(idx) - 1)
        end_i = cap
        for j in range(last + 1, cap + 1):
            if s[j] >= peak:
                end_i = j
                break
        day0 = idx[first]
        if any(e.start <= day0 <= e.end for e in named):
            continue
        out.append(Episode(f"auto {day0:%Y-%m-%d}", idx[peak_i], idx[end_i],
                           f"VIX {vix.iloc[first]:.1f} on {day0:%Y-%m-%d}, max {vix.iloc[first:last + 1].max():.1f}",
                           "auto"))
    return out


def episodes_in(spec: EpisodeFile, named: list[Episode], daily: pd.DataFrame, start: pd.Timestamp,
                end: pd.Timestamp) -> list[Episode]:
    """The named episodes (checked against their rule, with their window families) and the detected spikes that
    overlap [start, end] (daily: the panel's closes; the rule's checks read all of it)."""
    named = with_rule_windows(named, spec, daily["spx_close"], daily["vix_close"])
    d = daily.loc[start:end]
    auto = detect_spikes(d["vix_close"], d["spx_close"], spec.detect, named)
    return [e for e in named + auto if e.end >= start and e.start <= end]


# ---------------------------------------------------------------------------------------------------
# per-episode arithmetic
# ---------------------------------------------------------------------------------------------------


def window_span(index: pd.Index, start, end) -> slice:
    """The positions `.loc[start:end]` selects on `index` (pandas' own slice lookup, without building the slice)."""
    return index.slice_indexer(pd.Timestamp(start), pd.Timestamp(end))


def window_drawdown(equity: pd.Series, start, end) -> float:
    """Largest peak-to-trough fall (positive fraction) of `equity` inside [start, end], the peak being
    measured from the window's first day on. NaN when the window holds no data."""
    v = equity.to_numpy(dtype=float)[window_span(equity.index, start, end)]
    v = v[~np.isnan(v)]
    if not len(v):
        return math.nan
    return float(max(0.0, np.max(1.0 - v / np.maximum.accumulate(v))))


def window_change(series: pd.Series, start, end) -> float:
    """series(end) - series(last day before start) (0 before the first observation)."""
    start = pd.Timestamp(start)
    v = series.to_numpy()
    inside = v[window_span(series.index, start, end)]
    if not len(inside):
        return math.nan
    before = v[series.index.slice_indexer(None, start - pd.Timedelta(days=1))]
    base = float(before[-1]) if len(before) else 0.0
    return float(inside[-1]) - base


def reduction_pct(dd_unhedged: float, dd_hedged: float) -> float:
    """How much smaller the hedged drawdown is, in % of the unhedged one (negative = larger)."""
    if not (math.isfinite(dd_unhedged) and math.isfinite(dd_hedged)) or dd_unhedged <= 0:
        return math.nan
    return 100.0 * (dd_unhedged - dd_hedged) / dd_unhedged


# Verdict classes over the variants of one episode: every surface of the ensemble x condor-ladder phase (x window
# end, for an episode read over a window family); docs/alvh.md section 4
HELD_EVERY, HELD_SOME, HELD_NONE, WORSE_EVERY = ("held on every variant", "held on some variants",
                                                 "held on no variant", "worse on every variant")
NOT_SCORED = "not scored"
VARIANT_CLASSES = (HELD_EVERY, HELD_SOME, HELD_NONE, WORSE_EVERY)


def classify_variants(reductions: list[float], bands: ClaimBands | None = None) -> str:
    """The claim against the reduction on every variant (surface x ladder phase x window end): held (>= the claim's
    lower bound) on every variant, on some, on none; `worse on every variant` when the hedged drawdown is deeper on
    each. NaNs (no unhedged drawdown) are left out; "n/a" when nothing is left."""
    bands = bands or ClaimBands()
    r = [x for x in reductions if x is not None and math.isfinite(x)]
    if not r:
        return "n/a"
    if min(r) >= bands.met:
        return HELD_EVERY
    if max(r) >= bands.met:
        return HELD_SOME
    return WORSE_EVERY if max(r) < 0 else HELD_NONE


def classify(reduction: float, bands: ClaimBands | None = None) -> str:
    """Against the claimed 35-40%: >= 40 exceeded; [35, 40) met; [0, 35) fell short; < 0 made it worse."""
    bands = bands or ClaimBands()
    if reduction is None or not math.isfinite(reduction):
        return "n/a"
    if reduction >= bands.exceeded:
        return "exceeded"
    if reduction >= bands.met:
        return "met"
    if reduction >= 0:
        return "fell short"
    return "made it worse"
