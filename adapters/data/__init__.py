"""Validated market-data layer: read, check and assemble the daily panel, VX futures and option chains.

Public API::

    from adapters.data import load_panel, check_data, resolve_data_dir, MarketPanel, DataError
    from adapters.data import load_chain, list_chains, ChainSnapshot
"""
from .chains import ChainSnapshot, list_chains, load_chain
from .errors import DataError
from .panel import MarketPanel, check_data, load_panel, resolve_data_dir
from .validation import DataReport

__all__ = [
    "ChainSnapshot", "DataError", "DataReport", "MarketPanel",
    "check_data", "list_chains", "load_chain", "load_panel", "resolve_data_dir",
]
