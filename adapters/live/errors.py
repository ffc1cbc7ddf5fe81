"""What the daemon reports as one sentence (config, account, state file) rather than a traceback."""
from __future__ import annotations

from adapters.ib.connection import FatalConnectionError


class DaemonError(Exception):
    """A problem the user can fix (config, account, state file): one sentence."""


class StateError(DaemonError, FatalConnectionError):
    """The state file cannot be used (missing, not a daemon store, corrupt, locked, another account/mode); fatal
    to a connection attempt too: retrying cannot make it usable."""


class AccountRefused(DaemonError, FatalConnectionError):
    """The login's account may not be traded by this daemon."""


LiveAccountRefused = AccountRefused  # the earlier name, kept for callers
