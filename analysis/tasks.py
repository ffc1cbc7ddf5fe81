"""Running task dicts through a worker function: in this process, a local process pool, or a Dask cluster.

``run_tasks`` runs in this process (workers=1), in a local process pool (workers>1, one market panel per
worker process, loaded by the pool initializer; forked workers inherit the parent's), or on a Dask
distributed cluster (``scheduler="tcp://host:port"``; each worker loads the panel on its first task and keeps
it, see ``worker_panel``). A tqdm bar shows progress. The verdict and the sweep both run through here.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

_PANELS: dict[str, Any] = {}
_LOCK = threading.Lock()
PANEL_LOADS = 0   # how many times this process loaded a panel (tests check "once per worker")


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


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, unit="run", dynamic_ncols=True)


def run_tasks(fn: Callable[[dict, str], dict], tasks: list[dict], *, data_dir: str, workers: int = 1,
              scheduler: str | None = None, progress: bool = True, desc: str = "runs") -> list[dict]:
    """Results in task order."""
    if not tasks:
        return []
    if scheduler:
        return _run_dask(fn, tasks, data_dir, scheduler, progress, desc)
    if workers <= 1:
        out = []
        with _bar(len(tasks), desc, progress) as bar:
            for t in tasks:
                out.append(fn(t, data_dir))
                bar.update()
        return out
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    results: list[dict | None] = [None] * len(tasks)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(data_dir,)) as pool, _bar(len(tasks), desc, progress) as bar:
        futs = {pool.submit(fn, t, data_dir): i for i, t in enumerate(tasks)}
        for f in as_completed(futs):
            results[futs[f]] = f.result()
            bar.update()
    return results  # type: ignore[return-value]


def _run_dask(fn, tasks, data_dir, scheduler, progress, desc) -> list[dict]:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError as e:  # pragma: no cover - dask is an optional extra
        raise RuntimeError("--scheduler needs dask[distributed] (pip install 'alvh[sweep]')") from e
    client = Client(scheduler, timeout="30s")
    try:
        futs = client.map(fn, tasks, data_dir=data_dir, pure=False)
        with _bar(len(tasks), desc, progress) as bar:
            for _ in dask_completed(futs):
                bar.update()
        return client.gather(futs)
    finally:
        client.close()


def process_info(_task: dict | None = None, data_dir: str | None = None) -> dict:
    """For tests: which process ran this and how often it has loaded a panel (after making sure it has one,
    as every configuration does)."""
    if data_dir is not None:
        worker_panel(data_dir)
    return {"pid": os.getpid(), "panel_loads": PANEL_LOADS}
