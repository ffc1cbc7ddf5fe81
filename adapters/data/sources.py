"""Declarative description of every source file the data layer reads.

One spec per file: where it lives (relative to the data directory), which columns must be present,
which of them are prices, which date range of the file is used, and the allowlist of known gaps,
each with the reason from ``shared/data/SOURCES.md``. Nothing here reads data; ``validation/``
enforces these specs and ``panel.py`` assembles them.

Changing an allowlist is a data decision: every entry must cite what SOURCES.md (or a reviewed
finding of this layer) says about that day.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# The NYSE calendar used by engine.calendar starts here; nothing earlier is used.
CALENDAR_START = "1990-01-02"


@dataclass(frozen=True)
class KnownGap:
    """A trading day deliberately absent (or unusable) in a file, with the reason."""

    date: str
    reason: str


@dataclass(frozen=True)
class DailySpec:
    """One daily time-series file (index level, ETP close, FRED rate)."""

    key: str
    path: str
    description: str
    columns: tuple[str, ...]
    price_columns: tuple[str, ...]
    date_column: str = "date"
    # "price": values must be > 0; "nonnegative": >= 0 (an index floored at 0);
    # "rate": percent, may be 0 or negative, must lie in RATE_BOUNDS.
    value_kind: str = "price"
    # First / last date of the file that is used and checked for gaps (None = the file's own first/last row).
    coverage_start: str | None = CALENDAR_START
    coverage_end: str | None = None
    known_gaps: tuple[KnownGap, ...] = ()
    # FRED files: empty value on a holiday by design. On a day NYSE traded, carry the previous value
    # (as-of rule); a run of more than max_carry_run such days is an error.
    fred_empty_values: bool = False
    max_carry_run: int = 5
    empty_reason: str = "bond-market holidays such as Columbus Day and Veterans Day"
    jump_column: str | None = "close"
    jump_threshold: float | None = 1.0  # |log(x_t / x_{t-1})| above this -> warning
    known_jumps: tuple[KnownGap, ...] = ()  # real market events: reported in notes, not warnings
    # (source column, panel column) pairs this file contributes to MarketPanel.daily
    panel_columns: tuple[tuple[str, str], ...] = ()
    # "panel": feeds panel columns; "extension": appended after another file; "crosscheck": compared only
    role: str = "panel"
    ohlc: bool = False  # file has open/high/low/close -> consistency is reported (warning, not error)
    # A required file must exist. An optional file that is absent leaves its panel columns NaN and is
    # named in the notes: the condor book and the default hedge need SPX, VIX, DTB3 and the VX futures
    # only (a strategy that reads another series checks for it itself).
    required: bool = True


@dataclass(frozen=True)
class KnownBadValue:
    """A row whose value is known to be wrong; the value is replaced by the previous observation."""

    file: str
    date: str
    column: str
    reason: str


@dataclass(frozen=True)
class VXSpec:
    directory: str = "vx_futures"
    glob: str = "VX_????-??.csv"
    columns: tuple[str, ...] = (
        "trade_date", "contract_month", "expiry", "futures_label", "open", "high", "low", "close",
        "settle", "change", "total_volume", "efp", "open_interest", "source",
    )
    price_columns: tuple[str, ...] = ("open", "high", "low", "close", "settle")
    first_contract: str = "2004-05"
    last_contract: str | None = None  # None: the latest contract file present
    missing_contracts: tuple[KnownGap, ...] = ()
    rescale_before: str = "2007-03-26"
    rescale_factor: float = 10.0
    jump_threshold: float = 0.9
    known_bad_values: tuple[KnownBadValue, ...] = ()
    known_gaps: tuple[tuple[str, KnownGap], ...] = ()  # (file name, gap)


@dataclass(frozen=True)
class EventSpec:
    key: str
    path: str
    date_column: str
    description: str
    columns: tuple[str, ...] = field(default=())
    required: bool = False  # no strategy in the replay reads the event calendars yet


@dataclass(frozen=True)
class ChainSpec:
    directory: str = "spx_option_chains"
    glob: str = "spx_chain_*.csv"


RATE_BOUNDS = (-5.0, 30.0)  # percent; anything outside is a broken value, not a market

_S = "SOURCES.md"

# --------------------------------------------------------------------------------------------------
# Index levels
# --------------------------------------------------------------------------------------------------
SPX = DailySpec(
    key="spx",
    path="spx_daily.csv",
    description="S&P 500 index (^SPX) daily OHLC, Stooq export; price return, no dividends",
    columns=("date", "open", "high", "low", "close", "volume"),
    price_columns=("open", "high", "low", "close"),
    coverage_start=CALENDAR_START,  # rows before 1990 are monthly / Saturday sessions; not used
    jump_threshold=0.15,
    panel_columns=(("open", "spx_open"), ("high", "spx_high"), ("low", "spx_low"), ("close", "spx_close")),
    ohlc=True,
)
SPX_EXT = DailySpec(
    key="spx_ext",
    required=False,
    path="spx_daily_2016_2026.csv",
    description="S&P 500 second source (Interactive Brokers history), extends spx_daily.csv after its last date",
    columns=("date", "open", "high", "low", "close", "volume"),
    price_columns=("open", "high", "low", "close"),
    coverage_start=None,
    jump_threshold=0.15,
    role="extension",
    ohlc=True,
)
# Relative tolerance for the SPX overlap cross-check (0.05 %).
SPX_OVERLAP_TOLERANCE = 0.0005

_VIX_GAP = "CBOE's VIX_History.csv has no row for this SPX trading day (" + _S + " section 1)"
VIX = DailySpec(
    key="vix",
    path="vix_daily.csv",
    description="CBOE VIX index daily OHLC (CBOE VIX_History.csv)",
    columns=("date", "open", "high", "low", "close"),
    price_columns=("open", "high", "low", "close"),
    known_gaps=tuple(KnownGap(d, _VIX_GAP) for d in ("1991-03-01", "1997-01-31", "1997-11-26", "1999-12-31")),
    panel_columns=(("open", "vix_open"), ("high", "vix_high"), ("low", "vix_low"), ("close", "vix_close")),
    ohlc=True,
)
VIX_FRED = DailySpec(
    key="vix_fred",
    required=False,
    path="vix_daily_fred_vixcls.csv",
    description="FRED VIXCLS (VIX close); cross-check for vix_daily.csv only",
    columns=("date", "vixcls"),
    price_columns=("vixcls",),
    fred_empty_values=True,
    jump_column="vixcls",
    empty_reason="FRED has no VIXCLS value because CBOE published none (the same days vix_daily.csv lacks)",
    role="crosscheck",
)
VIX9D = DailySpec(
    key="vix9d",
    required=False,
    path="vix9d_daily.csv",
    description="CBOE VIX9D (9-day implied vol); 2011-2013 close only (open = close)",
    columns=("date", "open", "high", "low", "close"),
    price_columns=("open", "high", "low", "close"),
    known_jumps=(KnownGap("2018-02-05", "real market move: VIX9D closed 59.34 on Volmageddon (" + _S + " section 4)"),),
    panel_columns=(("open", "vix9d_open"), ("close", "vix9d_close")),
    ohlc=True,
)
VIX3M = DailySpec(
    key="vix3m",
    required=False,
    path="vix3m_daily.csv",
    description="CBOE VIX3M (formerly VXV), 3-month implied vol, from 2009-09-18",
    columns=("date", "open", "high", "low", "close"),
    price_columns=("open", "high", "low", "close"),
    panel_columns=(("open", "vix3m_open"), ("close", "vix3m_close")),
    ohlc=True,
)
VXV = DailySpec(
    key="vxv",
    required=False,
    path="vxv_daily_yahoo_2006_2018.csv",
    description="VXV (the same index as VIX3M) as published by Yahoo; back-fills vix3m before 2009-09-18",
    columns=("date", "open", "high", "low", "close", "adj_close", "volume"),
    price_columns=("open", "high", "low", "close"),
    coverage_start=None,
    role="extension",
    ohlc=True,
)
VIX3M_BACKFILL_BEFORE = "2009-09-18"  # first row of vix3m_daily.csv
VIX6M = DailySpec(
    key="vix6m",
    required=False,
    path="vix6m_daily.csv",
    description="CBOE VIX6M (formerly VXMT); 2008-2013 close only",
    columns=("date", "open", "high", "low", "close"),
    price_columns=("open", "high", "low", "close"),
    panel_columns=(("open", "vix6m_open"), ("close", "vix6m_close")),
    ohlc=True,
)
VVIX = DailySpec(
    key="vvix",
    required=False,
    path="vvix_daily.csv",
    description="CBOE VVIX (vol of VIX); used from 2007-01-01 (2006 values are unreliable)",
    columns=("date", "vvix"),
    price_columns=("vvix",),
    coverage_start="2007-01-01",  # SOURCES.md section 4: 2006 has 59 missing days and values of 15-38
    known_gaps=(
        KnownGap("2010-11-11", "VVIX_History.csv has no row for this day (" + _S + " section 4)"),
        KnownGap("2013-05-13", "VVIX_History.csv has no row for this day (" + _S + " section 4)"),
    ),
    jump_column="vvix",
    panel_columns=(("vvix", "vvix_close"),),
)
_SKEW_GAP = "SKEW_History.csv has no row for this day (" + _S + " section 4: SKEW is missing 16 trading days)"
SKEW = DailySpec(
    key="skew",
    required=False,
    path="skew_daily.csv",
    description="CBOE SKEW index",
    columns=("date", "skew"),
    price_columns=("skew",),
    known_gaps=tuple(
        KnownGap(d, _SKEW_GAP)
        for d in (
            "1998-06-30", "2000-09-20", "2000-09-21", "2000-09-22", "2000-09-25", "2000-09-26",
            "2000-09-27", "2000-09-28", "2000-09-29", "2003-10-21", "2003-10-28", "2011-02-09",
            "2017-09-14", "2018-12-03", "2019-07-05", "2024-11-29",
        )
    ),
    jump_column="skew",
    panel_columns=(("skew", "skew_close"),),
)
COR1M = DailySpec(
    key="cor1m",
    required=False,
    path="cboe_other/cor1m_daily.csv",
    description="CBOE 1-month implied correlation COR1M (values rounded to 2 decimals by the source repo)",
    columns=("date", "open", "high", "low", "close"),
    price_columns=("open", "high", "low", "close"),
    panel_columns=(("close", "cor1m_close"),),
    ohlc=True,
)
DSPX = DailySpec(
    key="dspx",
    required=False,
    path="cboe_other/dspx_daily.csv",
    description="CBOE S&P 500 Dispersion index DSPX. The file has 0.00 on 2018-02-08 (neighbours 14.05 and "
    "20.92, during the Feb-2018 correlation spike when VIX was close to VIXEQ); not in SOURCES.md, kept as "
    "published and reported as a warning. DSPX is therefore only required to be >= 0 and has no log-jump check",
    columns=("date", "dspx"),
    price_columns=("dspx",),
    value_kind="nonnegative",
    jump_column=None,
    jump_threshold=None,
    panel_columns=(("dspx", "dspx_close"),),
)
VIXEQ = DailySpec(
    key="vixeq",
    required=False,
    path="cboe_other/vixeq_daily.csv",
    description="CBOE VIXEQ (average single-stock implied vol of the S&P 500 constituents)",
    columns=("date", "vixeq"),
    price_columns=("vixeq",),
    jump_column="vixeq",
    panel_columns=(("vixeq", "vixeq_close"),),
)

# --------------------------------------------------------------------------------------------------
# Rates (FRED): percent in the file
# --------------------------------------------------------------------------------------------------
DTB3 = DailySpec(
    key="dtb3",
    path="rates/dtb3_daily.csv",
    description="FRED DTB3: 3-month T-bill, secondary market, discount basis, percent",
    columns=("date", "dtb3"),
    price_columns=("dtb3",),
    value_kind="rate",
    fred_empty_values=True,
    jump_column=None,
    jump_threshold=None,
    panel_columns=(("dtb3", "rate_tbill"),),
)
DTB3_EXT = DailySpec(
    key="dtb3_ext",
    required=False,
    path="rates/dtb3_daily_2000_2026.csv",
    description="FRED DTB3 second copy; extends rates/dtb3_daily.csv after its last date",
    columns=("date", "dtb3"),
    price_columns=("dtb3",),
    value_kind="rate",
    coverage_start=None,
    fred_empty_values=True,
    jump_column=None,
    jump_threshold=None,
    role="extension",
)
DFF = DailySpec(
    key="dff",
    required=False,
    path="rates/dff_daily.csv",
    description="FRED DFF: effective federal funds rate, percent, one row per calendar day",
    columns=("date", "dff"),
    price_columns=("dff",),
    value_kind="rate",
    fred_empty_values=True,
    jump_column=None,
    jump_threshold=None,
    panel_columns=(("dff", "dff"),),
)
TBILL_DAYS = 91  # DTB3 is quoted for a 91-day bill on a 360-day discount basis

# --------------------------------------------------------------------------------------------------
# VIX ETPs (close only, split-adjusted back-history)
# --------------------------------------------------------------------------------------------------
_REAL = "real market move (" + _S + " section 5: no jumps over 50 % except real events)"


def _etp(key: str, path: str, description: str, known_jumps: tuple[KnownGap, ...] = ()) -> DailySpec:
    return DailySpec(
        key=key,
        path=path,
        description=description + "; split-adjusted back-history as of 2026-08, levels before the last "
        "reverse split are not traded prices, returns are",
        columns=("date", "close"),
        price_columns=("close",),
        known_jumps=known_jumps,
        panel_columns=(("close", f"{key}_close"),),
        required=False,
    )


VIXY = _etp("vixy", "vix_etps/vixy_close_adjusted.csv", "ProShares VIXY (short-term VIX futures) close")
VIXM = _etp("vixm", "vix_etps/vixm_close_adjusted.csv", "ProShares VIXM (mid-term VIX futures) close")
VXX = _etp("vxx", "vix_etps/vxx_close_adjusted.csv", "iPath VXX series B (2018+) close")
UVXY = _etp("uvxy", "vix_etps/uvxy_close_adjusted.csv", "ProShares UVXY (1.5x/2x short-term VIX futures) close")
SVXY = _etp(
    "svxy", "vix_etps/svxy_close_adjusted.csv", "ProShares SVXY (inverse short-term VIX futures) close",
    known_jumps=(KnownGap("2018-02-06", _REAL + ": SVXY -83 % on Volmageddon"),),
)
SVIX = _etp("svix", "vix_etps/svix_close_adjusted.csv", "Volatility Shares SVIX (-1x short-term VIX futures) close")
UVIX = _etp("uvix", "vix_etps/uvix_close_adjusted.csv", "Volatility Shares UVIX (2x short-term VIX futures) close")
VXX_A = DailySpec(
    key="vxx_a",
    required=False,
    path="vix_etps/vxx_series_a_2009_2017_yahoo.csv",
    description="original iPath VXX (series A), Yahoo; 'close' is raw (x4 jumps at reverse splits), "
    "'adj_close' is split-adjusted as of 2017-01 and is what the panel uses",
    columns=("date", "open", "high", "low", "close", "volume", "adj_close"),
    price_columns=("open", "high", "low", "close", "adj_close"),
    coverage_start=None,
    jump_column="adj_close",
    panel_columns=(("adj_close", "vxx_a_close"),),
)

# --------------------------------------------------------------------------------------------------
# VX futures
# --------------------------------------------------------------------------------------------------
_NO_CFE = "absent from the CFE originals: early CFE listed only some serial months (" + _S + " section 3)"
VX = VXSpec(
    missing_contracts=(
        KnownGap("2004-12", _NO_CFE),
        KnownGap("2005-04", _NO_CFE),
        KnownGap("2005-07", _NO_CFE),
        KnownGap("2005-09", _NO_CFE),
        KnownGap("2026-03", "the scraper's download failed (typo date 20268-03-18) (" + _S + " section 3)"),
    ),
    known_bad_values=(
        KnownBadValue(
            "VX_2009-02.csv", "2008-04-21", "settle",
            "found by this layer, not in SOURCES.md: CFE file shows settle 1.00 (change -22.55) on a day the "
            "contract traded at 22.67 and every neighbouring contract settled 21.9-23.3; settle 23.48 next day",
        ),
        KnownBadValue(
            "VX_2009-01.csv", "2008-04-21", "settle",
            "found by this layer, not in SOURCES.md: settle 1.00 on the listing day before the first trade "
            "(23.92 next day); same CFE glitch as VX_2009-02 that day",
        ),
    ),
)

# --------------------------------------------------------------------------------------------------
# Event calendars
# --------------------------------------------------------------------------------------------------
FOMC_2000 = EventSpec(
    "fomc_2000_2026", "events/fomc_dates_2000_2026.csv", "date",
    "FOMC announcement dates incl. unscheduled (CunXin1); used before 2015",
)
FOMC_2015 = EventSpec(
    "fomc_2015_2026", "events/fomc_dates_2015_2026.csv", "decision_date",
    "FOMC decision dates 2015-2026 (mayherprog); preferred from 2015 (has 2026-04-29, CunXin1's 2026-05-06 is wrong)",
)
FOMC_MP1 = EventSpec(
    "fomc_1990_2020_mp1", "events/fomc_dates_1990_2020_mp1.csv", "date",
    "monetary-policy announcement dates 1990-2020 with MP1 surprise (not merged into 'fomc': contains "
    "non-FOMC events and day-after dates before 1994)",
)
CPI_2015 = EventSpec(
    "cpi_2015_2026", "events/cpi_release_dates_2015_2026.csv", "release_date",
    "US CPI release dates 2015-2026 (mayherprog); preferred",
)
CPI_FULLSACK = EventSpec(
    "cpi_fullsack73", "events/cpi_release_dates_fullsack73.csv", "release_date",
    "US CPI release dates 2010 and 2022-2025 (fullsack73); only the pre-2015 dates are used "
    "(its 2025-11-12 and 2025-12-12 are pre-shutdown schedule dates that never happened)",
)
FOMC_SWITCH = "2015-01-01"  # before: FOMC_2000, from: FOMC_2015
CPI_SWITCH = "2015-01-01"  # before: CPI_FULLSACK, from: CPI_2015

CHAINS = ChainSpec()

# Order matters: load_panel stops at the first error in this order.
DAILY_SPECS: tuple[DailySpec, ...] = (
    SPX, SPX_EXT, VIX, VIX_FRED, VIX9D, VIX3M, VXV, VIX6M, VVIX, SKEW,
    DTB3, DTB3_EXT, DFF,
    VIXY, VIXM, VXX, VXX_A, UVXY, SVXY, SVIX, UVIX,
    COR1M, DSPX, VIXEQ,
)
EVENT_SPECS: tuple[EventSpec, ...] = (FOMC_2000, FOMC_2015, FOMC_MP1, CPI_2015, CPI_FULLSACK)

# The file whose presence marks a directory as holding the data set.
MARKER_FILE = SPX.path
