"""What a fetch did: one :class:`FetchResult` per file, and the :class:`FetchReport` of a run."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FetchResult:
    source: str
    target: str          # path relative to dest
    url: str
    status: str          # fetched | skipped | not_modified | unlisted | failed | not_tried
    error: str | None = None
    unreachable: bool = False   # failed without reaching the server (DNS, refused, connect timeout)
    notice: str = ""            # one sentence about the provider used (e.g. a close-only fallback)
    rows: int | None = None
    bytes: int = 0
    attempts: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class FetchReport:
    dest: Path
    results: list[FetchResult] = field(default_factory=list)
    started_at: str = ""
    finished_at: str = ""
    partial: bool = False                 # only some catalogue sources were requested
    check_ok: bool | None = None          # None: validation not run / not available
    check_errors: list[str] = field(default_factory=list)
    check_warnings: list[str] = field(default_factory=list)
    unprovided: list[str] = field(default_factory=list)   # missing files fetch cannot provide
    notes: list[str] = field(default_factory=list)
    stopped: str = ""                     # why the run stopped early (the network is unreachable)

    def by_status(self, status: str) -> list[FetchResult]:
        return [r for r in self.results if r.status == status]

    @property
    def failed(self) -> list[FetchResult]:
        return self.by_status("failed")

    @property
    def ok(self) -> bool:
        """No source failed, and ``check_data`` passed (its errors are not blocking when only
        some sources were requested, since the others may legitimately be absent)."""
        return not self.failed and not self.stopped and (self.check_ok is not False or self.partial)

    @property
    def notices(self) -> list[str]:
        return list(dict.fromkeys(r.notice for r in self.results if r.notice))

    def summary(self) -> str:
        counts = {s: len(self.by_status(s)) for s in ("fetched", "not_modified", "skipped", "unlisted", "failed",
                                                         "not_tried")}
        parts = [f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n]
        check = {True: "data check passed", False: f"data check found {len(self.check_errors)} error(s)",
                 None: "data check not run"}[self.check_ok]
        return f"alvh data fetch -> {self.dest}: {', '.join(parts) or 'nothing to do'}; {check}."
