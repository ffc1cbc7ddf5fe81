"""IB account ids: which are paper accounts, and how they appear in logs (never in full)."""
from __future__ import annotations

import re

# IB account ids: U/F (live, advisor), DU/DF (paper) followed by digits
ACCOUNT_RE = re.compile(r"\b(DU|DF|U|F)(\d{5,})\b")


def mask(value: str | None, keep: int = 2) -> str:
    """Account ids and secrets never appear in full: DU1234567 -> DU*****67."""
    if not value:
        return ""
    if len(value) <= keep * 2:
        return "*" * len(value)
    return value[:keep] + "*" * (len(value) - 2 * keep) + value[-keep:]


def redact_text(text: str) -> str:
    """Every account id inside a free text masked."""
    return ACCOUNT_RE.sub(lambda m: mask(m.group(0)), text)
