"""Interactive Brokers adapter package (paper trading via ib_async)."""
