"""Running task dicts through a worker function: in this process, a local process pool, or a Dask cluster.

``run_tasks`` runs in this process (workers=1), in a local process pool (workers>1, one market panel per
worker process, loaded by the pool initializer; forked workers inherit the parent's), or on a Dask
distributed cluster (``scheduler="tcp://host:port"``, or ``"local:N"`` for a cluster of N worker processes on
this machine started for the run; each worker loads the panel on its first task and keeps it, see
``worker_panel``). Every run in a worker process shares that process's market state: the replay snapshots and
the snapshot price cache (adapters/sim/backtest.py), so only a worker's first run prices the market.

Tasks go to Dask in chunks (about sixteen per worker: fewer round trips). In a local pool each worker walks its own
contiguous segment of the task list and then takes tasks from the back of the longest segment left (``_run_pool``),
so neighbouring tasks, which price the same contracts, mostly run in the same process; given a `group` key, each run
of neighbouring tasks with one key runs whole in one process (the verdict: one surface and ladder phase). Results
come back in task order. Progress: a bar with ETA on a terminal, a plain line every ``PROGRESS_SECONDS`` otherwise
(logs, CI).
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
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Self

_PANELS: dict[str, Any] = {}
_BOUNDS: Any = None   # in a pool worker: the shared block bounds and result queue of _run_pool
_DONE: Any = None
_LOCK = threading.Lock()
PANEL_LOADS = 0   # how many times this process loaded a panel (tests check "once per worker")
PROGRESS_SECONDS = 15.0


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


def _init_worker(data_dir: str, bounds=None, done=None) -> None:
    """A pool worker: quiet logging, the panel, and the shared block bounds and result queue of _run_pool."""
    import logging

    global _BOUNDS, _DONE
    _BOUNDS, _DONE = bounds, done
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


def _clock(seconds: float) -> str:
    if math.isnan(seconds):   # no rate yet
        return "?"
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def run_tasks(fn: Callable[[dict, str], dict], tasks: list[dict], *, data_dir: str, workers: int = 1,
              scheduler: str | None = None, progress: bool = True, desc: str = "runs",
              group: Callable[[dict], Hashable] | None = None) -> list[dict]:
    """Results in task order. `group`: a local pool runs each run of consecutive tasks with the same group key
    whole on one worker (tasks that price the same contracts: that worker prices them once)."""
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
    return _run_pool(fn, tasks, data_dir, workers, progress, desc, _blocks(tasks, group))


def _blocks(tasks: list[dict], group: Callable[[dict], Hashable] | None) -> list[tuple[int, int]]:
    """[start, end) of each block a worker claims whole: one task, or one run of neighbouring tasks with the same
    `group` key."""
    if group is None:
        return [(i, i + 1) for i in range(len(tasks))]
    keys = [group(t) for t in tasks]
    starts = [i for i in range(len(tasks)) if i == 0 or keys[i] != keys[i - 1]]
    return list(zip(starts, starts[1:] + [len(tasks)]))


def _segments(n_blocks: int, workers: int) -> list[int]:
    """Each worker's [front, back) of block indices, flattened: W contiguous segments of about equal length."""
    cuts = [round(k * n_blocks / workers) for k in range(workers + 1)]
    return [x for k in range(workers) for x in (cuts[k], cuts[k + 1])]


def _claim(bounds, k: int) -> int | None:
    """The next block for worker k: the front of its own segment, else the back of the segment with the most left
    (its owner is furthest from it), else None. `bounds`: a shared array of [front, back) pairs, with a lock."""
    with bounds.get_lock():
        lo, hi = bounds[2 * k], bounds[2 * k + 1]
        if lo < hi:
            bounds[2 * k] = lo + 1
            return lo
        left = [bounds[2 * j + 1] - bounds[2 * j] for j in range(len(bounds) // 2)]
        j = max(range(len(left)), key=left.__getitem__)
        if left[j] <= 0:
            return None
        bounds[2 * j + 1] -= 1
        return bounds[2 * j + 1]


def _run_pool(fn, tasks, data_dir, workers, progress, desc, blocks) -> list[dict]:
    """A local process pool in which worker k walks its own contiguous segment of the blocks and, done, takes
    blocks from the back of the longest segment left. Neighbouring tasks share contracts and markets (a sweep
    orders its configurations so), so each worker meets fewer contracts its own price cache has not seen than
    when the workers take turns; finished tasks stream back through a queue for the progress line."""
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    workers = min(workers, len(blocks))
    bounds = ctx.Array("q", _segments(len(blocks), workers))
    done = ctx.Queue()
    results: list[dict | None] = [None] * len(tasks)
    got = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(data_dir, bounds, done)) as pool, Progress(len(tasks), desc, progress) as bar:
        futs = [pool.submit(_run_segment, fn, tasks, blocks, data_dir, k) for k in range(workers)]
        try:
            while got < len(tasks):
                try:
                    i, r = done.get(timeout=0.5)
                except queue.Empty:
                    for f in futs:   # a worker's exception (or a dead worker) stops the run
                        if f.done() and f.exception() is not None:
                            raise f.exception()
                    continue
                results[i] = r
                got += 1
                bar.update()
        except BaseException:
            with bounds.get_lock():   # nothing more to claim: the workers stop after their current task
                for j in range(0, len(bounds), 2):
                    bounds[j] = bounds[j + 1]
            raise
    return results  # type: ignore[return-value]


def _run_segment(fn: Callable[[dict, str], dict], tasks: list[dict], blocks: list[tuple[int, int]], data_dir: str,
                 k: int) -> int:
    n = 0
    while (b := _claim(_BOUNDS, k)) is not None:
        for i in range(*blocks[b]):
            _DONE.put((i, fn(tasks[i], data_dir)))
            _tidy_heap()
            n += 1
    return n


def _tidy_heap() -> None:
    """Between runs in a worker: collect the finished run's reference cycles, then freeze what survives (the
    panel, the price cache) so the collector's full passes during the next runs do not walk it again."""
    gc.collect()
    gc.freeze()


def _run_chunk(fn: Callable[[dict, str], dict], chunk: list[dict], data_dir: str) -> list[dict]:
    return [fn(t, data_dir) for t in chunk]


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
