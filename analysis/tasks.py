"""Running task dicts through a worker function: in this process, a local process pool, or a Dask cluster.

``run_tasks`` runs in this process (workers=1), in a local process pool (workers>1, one market panel per
worker process, loaded by the pool initializer; forked workers inherit the parent's), or on a Dask
distributed cluster (``scheduler="tcp://host:port"``, or ``"local:N"`` for a cluster of N worker processes on
this machine started for the run; each worker loads the panel on its first task and keeps it, see
``worker_panel``). Every run in a worker process shares that process's market state: the replay snapshots and
the snapshot price cache (adapters/sim/backtest.py), so only a worker's first run prices the market.

Tasks go to Dask in chunks (about sixteen per worker: fewer round trips), to a local pool four neighbouring tasks at a
time on large grids (see POOL_CHUNK) or, given a `group` key, one group of neighbouring tasks per chunk (the verdict:
one surface and ladder phase, whose runs price the same contracts), and come back in task order. Progress: a bar with ETA on a terminal, a plain
line every ``PROGRESS_SECONDS`` otherwise (logs, CI).
"""
from __future__ import annotations

import gc
import math
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Self

_PANELS: dict[str, Any] = {}
_LOCK = threading.Lock()
PANEL_LOADS = 0   # how many times this process loaded a panel (tests check "once per worker")
PROGRESS_SECONDS = 15.0
# Large grids go to the local pool a few neighbouring tasks at a time: neighbours differ in one axis (cost level,
# budget reading) and hold the same contracts on the same days, so a worker that runs them together prices those
# once; small enough that the last chunk cannot hold the other workers up by more than a few runs.
POOL_CHUNK = 4


def worker_panel(data_dir: str):
    """The market panel for data_dir, loaded at most once per process."""
    global PANEL_LOADS
    key = str(data_dir)
    p = _PANELS.get(key)
    if p is not None:
        return p
    with _LOCK:
        p = _PANELS.get(key)
        if p is None:
            from adapters.data.panel import load_panel

            p = load_panel(key)
            _PANELS[key] = p
            PANEL_LOADS += 1
    return p


def _init_worker(data_dir: str) -> None:
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    worker_panel(data_dir)


class Progress:
    """tqdm's bar (with ETA) when stderr is a terminal; otherwise one plain line every `every` seconds and at the
    end: "sweep: 120/578 runs (21%), 2.9 runs/s, elapsed 41s, ETA 2m37s"."""

    def __init__(self, total: int, desc: str, enabled: bool, every: float | None = None, stream=None) -> None:
        self.total, self.desc, self.enabled = total, desc, enabled
        self.stream = stream or sys.stderr
        self.every = PROGRESS_SECONDS if every is None else every
        self.done = 0
        self.t0 = self._last = time.perf_counter()
        self._bar = None
        if enabled and self.stream.isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="run", dynamic_ncols=True, file=self.stream)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if self.enabled and (now - self._last >= self.every or self.done >= self.total):
            self._last = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.perf_counter()) - self.t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        return (f"{self.desc}: {self.done}/{self.total} runs ({100 * self.done / max(self.total, 1):.0f}%), "
                f"{rate:.1f} runs/s, elapsed {_clock(elapsed)}, ETA {_clock(eta)}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()


_FORKED: list[Callable[[], Any]] = []   # the jobs run_forked's workers run (inherited through fork, never pickled)


def _call_forked(i: int) -> Any:
    return _FORKED[i]()


def run_forked(jobs: list[Callable[[], Any]], workers: int | None = None) -> list:
    """Each job's result, in order. With more than one worker (default: the machine's cores) and fork available,
    forked processes run the jobs: they inherit what the jobs read (the panel, a verdict's results) instead of
    pickling it; only the results come back pickled. Otherwise (one core, no fork, or called from a pool worker,
    which may not start processes) the jobs run here, one after another. For a few independent pieces of a report
    (its charts, `alvh validate`'s chain and replay checks), not for grids of runs (run_tasks). The first job to raise stops the others and its error is raised here at once (a bad file found
    by one half of `alvh validate` does not wait for the other half's replays)."""
    cores = os.cpu_count() or 1
    workers = min(cores if workers is None else workers, cores, len(jobs))
    if workers < 2 or "fork" not in mp.get_all_start_methods() or _FORKED or mp.current_process().daemon:
        return [job() for job in jobs]
    _FORKED[:] = jobs
    done: queue.SimpleQueue = queue.SimpleQueue()   # (index, ok, result or error), filled by the pool's result thread
    results: list = [None] * len(jobs)
    try:
        with mp.get_context("fork").Pool(workers) as pool:   # leaving the block terminates what is still running
            for i in range(len(jobs)):
                pool.apply_async(_call_forked, (i,), callback=lambda r, i=i: done.put((i, True, r)),
                                 error_callback=lambda e, i=i: done.put((i, False, e)))
            for _ in jobs:
                i, ok, value = done.get()
                if not ok:
                    raise value
                results[i] = value
        return results
    finally:
        _FORKED.clear()


def _clock(seconds: float) -> str:
    if math.isnan(seconds):   # no rate yet
        return "?"
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def run_tasks(fn: Callable[[dict, str], dict], tasks: list[dict], *, data_dir: str, workers: int = 1,
              scheduler: str | None = None, progress: bool = True, desc: str = "runs",
              group: Callable[[dict], Hashable] | None = None) -> list[dict]:
    """Results in task order. `group`: a local pool runs each run of consecutive tasks with the same group key as
    one chunk on one worker (tasks that price the same contracts: that worker prices them once)."""
    if not tasks:
        return []
    if scheduler:
        return _run_dask(fn, tasks, data_dir, scheduler, progress, desc)
    if workers <= 1:
        out = []
        with Progress(len(tasks), desc, progress) as bar:
            for t in tasks:
                out.append(fn(t, data_dir))
                bar.update()
        return out
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    results: list[dict | None] = [None] * len(tasks)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(data_dir,)) as pool, Progress(len(tasks), desc, progress) as bar:
        futs = {pool.submit(_run_pool_chunk, fn, tasks[i:j], data_dir): i for i, j in _pool_chunks(tasks, workers, group)}
        for f in as_completed(futs):
            chunk = f.result()
            results[futs[f]:futs[f] + len(chunk)] = chunk
            bar.update(len(chunk))
    return results  # type: ignore[return-value]


def _pool_chunks(tasks: list[dict], workers: int, group: Callable[[dict], Hashable] | None) -> list[tuple[int, int]]:
    """[start, end) of each chunk: whole groups when `group` is given, else POOL_CHUNK tasks on large grids.
    Groups that do not fill a last round of the pool (5 groups on 2 workers: the fifth) are cut into one piece per
    worker, so no worker idles through a whole group at the end; each piece's worker then prices that group's
    contracts itself (results do not depend on which worker priced what: the price cache is bit-identical)."""
    n = len(tasks)
    if group is None:
        size = POOL_CHUNK if n >= 64 * workers else 1
        return [(i, min(i + size, n)) for i in range(0, n, size)]
    keys = [group(t) for t in tasks]
    starts = [i for i in range(n) if i == 0 or keys[i] != keys[i - 1]]
    bounds = list(zip(starts, starts[1:] + [n]))
    extra = len(bounds) % workers
    if not extra or len(bounds) < workers:
        return bounds
    lo = bounds[-extra][0]
    step = -(-(n - lo) // workers)
    return bounds[:-extra] + [(i, min(i + step, n)) for i in range(lo, n, step)]


def _run_chunk(fn: Callable[[dict, str], dict], chunk: list[dict], data_dir: str) -> list[dict]:
    return [fn(t, data_dir) for t in chunk]


def _run_pool_chunk(fn: Callable[[dict, str], dict], chunk: list[dict], data_dir: str) -> list[dict]:
    """_run_chunk in a local pool worker, which lives for one run_tasks call: after each run the finished run's
    reference cycles are collected and what survives (the panel, the price cache) frozen, so the collector's full
    passes during later runs do not walk it again (2-3% of a sweep worker's time, and a smaller heap). Not done in
    this process or a Dask worker, which live on: an object frozen there is never collected should it later
    become part of a cycle."""
    out = []
    for t in chunk:
        out.append(fn(t, data_dir))
        gc.collect()
        gc.freeze()
    return out


def _chunks(tasks: list[dict], n_workers: int) -> list[list[dict]]:
    """About sixteen chunks per worker: a large grid makes few round trips, and the last chunk cannot hold the
    others up by more than a few percent."""
    size = max(1, len(tasks) // max(16 * n_workers, 1))
    return [tasks[i:i + size] for i in range(0, len(tasks), size)]


def _run_dask(fn, tasks, data_dir, scheduler, progress, desc) -> list[dict]:
    try:
        from distributed import Client, LocalCluster
        from distributed import as_completed as dask_completed
    except ImportError as e:  # pragma: no cover - dask is an optional extra
        raise RuntimeError("--scheduler needs dask[distributed] (pip install 'alvh[sweep]')") from e
    cluster = None
    if scheduler.startswith("local:"):
        try:
            n = int(scheduler.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"--scheduler {scheduler}: use local:N with N >= 1 worker processes, or tcp://host:port")
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        scheduler = cluster.scheduler_address
    client = Client(scheduler, timeout="30s")
    try:
        n_workers = max(len(client.scheduler_info().get("workers", {})), 1)
        chunks = _chunks(tasks, n_workers)
        futs = client.map(_run_chunk, [fn] * len(chunks), chunks, data_dir=data_dir, pure=False)
        sizes = {f.key: len(c) for f, c in zip(futs, chunks)}
        with Progress(len(tasks), desc, progress) as bar:
            for f in dask_completed(futs):
                bar.update(sizes[f.key])
        return [r for chunk in client.gather(futs) for r in chunk]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def process_info(_task: dict | None = None, data_dir: str | None = None) -> dict:
    """For tests: which process ran this and how often it has loaded a panel (after making sure it has one,
    as every configuration does)."""
    if data_dir is not None:
        worker_panel(data_dir)
    return {"pid": os.getpid(), "panel_loads": PANEL_LOADS}
