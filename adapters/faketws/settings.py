"""The fake server's behaviour knobs (see the FakeTWS constructor). One mutable object shared by every
part of the server, so a knob changed on a running server (``srv.fills_before_open_order = True``)
takes effect everywhere at once."""

from __future__ import annotations

from dataclasses import dataclass

SUPPORTED_VERSIONS = (176, 177, 178)


@dataclass
class Settings:
    account: str = "DU1234567"
    server_version: int = 178
    no_quote_error: int = 200
    market_data_entitled: bool = True
    tick_interval: float = 0.5
    max_msg_rate: int = 50
    pacing_window: float = 0.9  # seconds; a little under 1 s so TCP jitter can't fake a burst
    enforce_unique_client_id: bool = True
    master_client_id: int | None = None
    farm_notices: bool = True
    enforce_ticks: bool = True
    bag_commission_report: bool = False
    fills_before_open_order: bool = False
    chain_exchanges: tuple[str, ...] = ("SMART",)

    def __post_init__(self) -> None:
        if self.server_version not in SUPPORTED_VERSIONS:
            raise ValueError(f"server_version must be one of {SUPPORTED_VERSIONS}")

    def sees_all_orders(self, client_id: int | None) -> bool:
        """The master client sees every client's orders and executions."""
        return client_id == self.master_client_id
