"""Which account the daemon trades: the login's, checked - never the config string alone.

TWS/Gateway reports the accounts the login manages (`managedAccounts`). The daemon trades exactly one:
- `daemon.ib.account` set: it must be one of the managed accounts (a DU id in the config does not make a live
  login a paper one);
- not set: the login must manage exactly one account.
That account must be a paper account (id starting with DU) unless both `--allow-live` and
`daemon.allow_live = true` say otherwise. Every refusal names the accounts involved, masked.
"""
from __future__ import annotations

from collections.abc import Sequence

import structlog

from adapters.ib.accounts import mask
from adapters.live.errors import AccountRefused

log = structlog.get_logger("alvh.daemon")


def _masked(accounts: Sequence[str]) -> str:
    return ", ".join(mask(a) for a in accounts) or "<none>"


def choose_account(managed: Sequence[str], configured: str, allow_live_flag: bool, allow_live_config: bool) -> str:
    """The account to trade, or AccountRefused naming both sides (masked)."""
    managed = [a for a in managed if a]
    if configured:
        if configured not in managed:
            raise AccountRefused(f"refusing account {mask(configured)} (daemon.ib.account): the login manages "
                                 f"{_masked(managed)}, not that account")
        account = configured
    elif len(managed) == 1:
        account = managed[0]
    elif not managed:
        raise AccountRefused("refusing to trade: the login reports no managed account")
    else:
        raise AccountRefused(f"refusing to guess: the login manages several accounts ({_masked(managed)}); "
                             "set daemon.ib.account")
    check_account(account, allow_live_flag, allow_live_config)
    return account


def check_account(account: str, allow_live_flag: bool, allow_live_config: bool) -> None:
    if account.startswith("DU"):
        return
    if allow_live_flag and allow_live_config:
        log.warning("live_account_allowed", account=mask(account))
        return
    raise AccountRefused(
        f"refusing account {mask(account) or '<none>'}: not a paper account (ids start with DU); "
        "a live account needs both --allow-live and daemon.allow_live = true")


def account_mode(account: str, rehearsal: bool) -> str:
    """The store mode a run on this account is: rehearsal, paper (DU...) or live."""
    if rehearsal:
        return "rehearsal"
    return "paper" if account.startswith("DU") else "live"
