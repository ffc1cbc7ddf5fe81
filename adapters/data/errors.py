"""Errors raised by the data layer.

A :class:`DataError` always names the file and, when it is about one line, the 1-based line
number in that file (the header is line 1, so the first data row is row 2). The message reads
as one sentence a trader can act on, e.g.::

    vix_daily.csv row 7581 (2020-03-16): close is NaN
"""
from __future__ import annotations


class DataError(Exception):
    """A hard data problem: missing file, bad value, duplicate/out-of-order date or unexplained gap."""

    def __init__(self, file: str, row: int | None, message: str, *, date: str | None = None) -> None:
        self.file = str(file)
        self.row = None if row is None else int(row)
        self.date = date
        self.message = message
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if date:
            where += f" ({date})"
        super().__init__(f"{where}: {message}")

    def __reduce__(self):  # keep picklable (multiprocessing / dask workers)
        return (_rebuild, (self.file, self.row, self.message, self.date))


def _rebuild(file: str, row: int | None, message: str, date: str | None) -> DataError:
    return DataError(file, row, message, date=date)
