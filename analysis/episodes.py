"""Volatility episodes and the per-episode arithmetic of the verdict.

- ``load_episodes``: config/episodes.toml -> named episodes, the auto-detection rule, the claim bands and the
  verdict settings (typed; every error is one sentence naming the file and the key);
- ``detect_spikes``: spikes found by the documented rule (VIX > 25 and > 1.5x its trailing median);
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
from pydantic import Field, ValidationError, model_validator

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
    # the baselines' [hedge] tables; kept as written (they go into verdict.json), checked by load_episodes
    vxth: dict[str, Any] = Field(default_factory=dict)
    spx_puts: dict[str, Any] = Field(default_factory=dict)


class EpisodeSpec(Params):
    name: str
    start: dt.date
    end: dt.date
    note: str = ""

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


@dataclass(frozen=True)
class Episode:
    name: str
    start: pd.Timestamp
    end: pd.Timestamp
    note: str = ""
    source: str = "named"   # "named" | "auto"

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")


def load_episodes(path: str | Path | None = None) -> tuple[EpisodeFile, list[Episode]]:
    """The episode file and its named episodes. Raises config.errors.ConfigError."""
    from strategies.baselines import SpxPutParams, VxthParams

    spec, label = load_model(path, EpisodeFile, "episodes.toml")
    for key, model in (("vxth", VxthParams), ("spx_puts", SpxPutParams)):
        try:  # exactly the table the verdict's baseline scenario will be built from
            model.model_validate({"kind": key, **getattr(spec.verdict, key)})
        except ValidationError as e:
            raise config_error(label, e, prefix=f"verdict.{key}") from None
    eps = [Episode(e.name, pd.Timestamp(e.start), pd.Timestamp(e.end), e.note, "named") for e in spec.episode]
    return spec, eps


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
    """The named episodes and the detected spikes that overlap [start, end] (daily: the panel's closes)."""
    d = daily.loc[start:end]
    auto = detect_spikes(d["vix_close"], d["spx_close"], spec.detect, named)
    return [e for e in named + auto if e.end >= start and e.start <= end]


# ---------------------------------------------------------------------------------------------------
# per-episode arithmetic
# ---------------------------------------------------------------------------------------------------


def window_drawdown(equity: pd.Series, start, end) -> float:
    """Largest peak-to-trough fall (positive fraction) of `equity` inside [start, end], the peak being
    measured from the window's first day on. NaN when the window holds no data."""
    e = equity.loc[pd.Timestamp(start):pd.Timestamp(end)].dropna()
    if e.empty:
        return math.nan
    v = e.to_numpy(dtype=float)
    return float(max(0.0, np.max(1.0 - v / np.maximum.accumulate(v))))


def window_change(series: pd.Series, start, end) -> float:
    """series(end) - series(last day before start) (0 before the first observation)."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    inside = series.loc[start:end]
    if inside.empty:
        return math.nan
    before = series.loc[:start - pd.Timedelta(days=1)]
    base = float(before.iloc[-1]) if len(before) else 0.0
    return float(inside.iloc[-1]) - base


def reduction_pct(dd_unhedged: float, dd_hedged: float) -> float:
    """How much smaller the hedged drawdown is, in % of the unhedged one (negative = larger)."""
    if not (math.isfinite(dd_unhedged) and math.isfinite(dd_hedged)) or dd_unhedged <= 0:
        return math.nan
    return 100.0 * (dd_unhedged - dd_hedged) / dd_unhedged


# Verdict classes over the condor-ladder phases of one episode (docs/alvh.md section 4)
HELD_EVERY, HELD_SOME, HELD_NONE, WORSE_EVERY = ("held on every phase", "held on some phases", "held on no phase",
                                                 "worse on every phase")
NOT_SCORED = "not scored"
PHASE_CLASSES = (HELD_EVERY, HELD_SOME, HELD_NONE, WORSE_EVERY)


def classify_phases(reductions: list[float], bands: ClaimBands | None = None) -> str:
    """The claim against the reduction on every condor-ladder phase: held (>= the claim's lower bound) on every
    phase, on some, on none; `worse on every phase` when the hedged drawdown is deeper on each. NaNs (no unhedged
    drawdown) are left out; "n/a" when nothing is left."""
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
