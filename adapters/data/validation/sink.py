"""Where validation findings go: :class:`Sink` collects errors (or raises the first one), warnings
and notes, listing at most ``LIMIT`` of one kind per file before a summary line."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from ..errors import DataError

LIMIT = 10  # per (file, check): errors/warnings listed individually before a summary line


def fmt_date(ts) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d")


def list_dates(dates: Iterable, limit: int = 8) -> str:
    dates = list(dates)
    s = ", ".join(fmt_date(x) for x in dates[:limit])
    return s + (f", ... ({len(dates)} in all)" if len(dates) > limit else "")


class Sink:
    """Collects (or raises) errors; always collects warnings and notes."""

    def __init__(self, collect: bool) -> None:
        self.collect = collect
        self.errors: list[DataError] = []
        self.warnings: list[str] = []
        self.notes: list[str] = []

    def error(self, file: str, row: int | None, message: str, date: str | None = None) -> None:
        err = DataError(file, row, message, date=date)
        if not self.collect:
            raise err
        self.errors.append(err)

    def errors_at(self, file: str, rows: Sequence, dates: Sequence, messages: Sequence[str]) -> None:
        n = len(rows)
        for i in range(min(n, LIMIT)):
            r = rows[i]
            dt = dates[i]
            self.error(file, None if r is None else int(r), messages[i], None if dt is None else fmt_date(dt))
        if n > LIMIT:
            self.error(file, None, f"{n - LIMIT} more rows have the same kind of problem as row {int(rows[LIMIT - 1])}")

    def warn_at(self, file: str, rows: Sequence, dates: Sequence, messages: Sequence[str]) -> None:
        n = len(rows)
        for i in range(min(n, LIMIT)):
            self.warnings.append(str(DataError(file, int(rows[i]), messages[i], date=fmt_date(dates[i]))))
        if n > LIMIT:
            self.warnings.append(f"{file}: {n - LIMIT} more rows with the same warning as row {int(rows[LIMIT - 1])}")

    @property
    def n_errors(self) -> int:
        return len(self.errors)
