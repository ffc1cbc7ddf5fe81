"""Validation of every source file against its spec in ``sources.py``.

All checks are vectorised pandas/numpy. Two modes share the same code:

* ``collect=False`` (``load_panel``): the first hard error is raised as :class:`DataError`.
* ``collect=True`` (``check_data``): every error is collected (at most ``LIMIT`` per check and
  file, then one summary line), together with warnings and notes.

Row numbers are 1-based line numbers in the file (header = line 1, first data row = line 2).

Modules: ``sink`` (collecting findings), ``reading`` (CSV text, dates, numbers, calendar),
``daily`` (per-file rules of a daily series), ``gaps`` (its calendar gap checks), ``vx`` (VX
futures), ``report`` (everything together, cross-checks, ``check_data``).
"""
from .daily import ValidatedSeries, validate_daily
from .reading import trading_days_between
from .reading import trading_days_between as _trading_days  # noqa: F401 - the name chains.py imports
from .report import (
    DataReport,
    Validated,
    check_data,
    check_option_files,
    coverage_table,
    cross_checks,
    validate_all,
    validate_events,
)
from .sink import Sink
from .vx import ValidatedVX, validate_vx

__all__ = [
    "DataReport", "Sink", "Validated", "ValidatedSeries", "ValidatedVX", "check_data", "check_option_files",
    "coverage_table",
    "cross_checks", "trading_days_between", "validate_all", "validate_daily", "validate_events", "validate_vx",
]
