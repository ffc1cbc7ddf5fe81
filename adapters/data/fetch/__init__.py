"""``alvh data fetch``: download the public data sources into a local directory.

The directory uses exactly the layout of ``shared/data`` (see ``docs/fetch.md``), so the rest of
alvh reads it unchanged. HTTP is plain :mod:`urllib.request`.

Per file the fetcher

1. skips the download when the file is present, matches its ``<file>.meta.json`` sidecar
   (sha256) and is younger than ``max_age_days`` (a settled VX contract is never re-fetched);
   a stale file is revalidated with ``If-None-Match`` / ``If-Modified-Since``;
2. downloads the raw body to ``<file>.part``, resuming an interrupted download with an HTTP
   ``Range`` request (a server that answers 200 instead of 206 restarts it from byte 0);
3. normalizes the complete body, and only then replaces ``<file>`` atomically (``os.replace``).

Modules: ``download`` (HTTP, resume, retries), ``job`` (one file), ``runner`` (``fetch_all``),
``contracts_index`` (VX index), ``sources_md`` (SOURCES.md), ``check`` (validation),
``files`` (sidecars and atomic writes), ``report`` (results).
"""
from .contracts_index import rebuild_contracts_index
from .files import default_dest
from .report import FetchReport, FetchResult
from .runner import catalogue_lines, fetch_all

__all__ = [
    "FetchReport",
    "FetchResult",
    "catalogue_lines",
    "default_dest",
    "fetch_all",
    "rebuild_contracts_index",
]
