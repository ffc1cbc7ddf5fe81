"""analysis/tasks.py scheduling pieces: progress lines off a terminal, Dask chunks, the local:N scheduler form."""
import io
import re

import pytest

from analysis import tasks


def test_progress_prints_plain_lines_with_rate_and_eta_off_a_terminal():
    out = io.StringIO()   # not a terminal: no bar, plain lines
    with tasks.Progress(4, "sweep", True, every=0.0, stream=out) as bar:
        for _ in range(4):
            bar.update()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert re.fullmatch(r"sweep: 2/4 runs \(50%\), [\d.]+ runs/s, elapsed \d+s, ETA \d+s", lines[1])
    assert lines[-1].startswith("sweep: 4/4 runs (100%)") and lines[-1].endswith("ETA 0s")


def test_progress_lines_are_spaced_in_time_and_silent_when_disabled():
    out = io.StringIO()
    bar = tasks.Progress(100, "verdict runs", True, every=3600.0, stream=out)
    for _ in range(99):
        bar.update()
    assert out.getvalue() == ""                       # nothing until the interval passes ...
    bar.update()
    assert out.getvalue().startswith("verdict runs: 100/100")   # ... except the last line
    quiet = io.StringIO()
    q = tasks.Progress(3, "x", False, every=0.0, stream=quiet)
    for _ in range(3):
        q.update()
    assert quiet.getvalue() == ""


def test_dask_chunks_keep_order_and_stay_small_per_worker():
    items = [{"i": i} for i in range(578)]
    chunks = tasks._chunks(items, 2)
    assert [t for c in chunks for t in c] == items
    assert max(len(c) for c in chunks) <= 578 // 32 + 1 and len(chunks) >= 32
    assert tasks._chunks(items[:5], 2) == [[t] for t in items[:5]]


def test_local_scheduler_needs_a_worker_count(tmp_path):
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match="local:N"):
        tasks.run_tasks(tasks.process_info, [{}], data_dir=str(tmp_path), scheduler="local:0", progress=False)


def _echo(task: dict, data_dir: str) -> dict:
    return {"id": task["id"], "pid": __import__("os").getpid()}


def test_local_pool_runs_large_grids_in_chunks_and_returns_task_order(monkeypatch):
    monkeypatch.setattr(tasks, "_init_worker", lambda data_dir: None)   # no panel needed by _echo
    items = [{"id": i} for i in range(64 * 2 + 7)]   # large enough to be chunked, and a short last chunk
    out = io.StringIO()
    monkeypatch.setattr(tasks.sys, "stderr", out)
    res = tasks.run_tasks(_echo, items, data_dir="-", workers=2, progress=True)
    assert [r["id"] for r in res] == list(range(len(items)))
    assert out.getvalue().splitlines()[-1].startswith(f"runs: {len(items)}/{len(items)} runs (100%)")
    # a chunk runs in one process: neighbours share a worker
    for i in range(0, len(items) - 1, tasks.POOL_CHUNK):
        assert len({r["pid"] for r in res[i:i + tasks.POOL_CHUNK]}) == 1


def test_local_pool_keeps_each_group_of_neighbouring_tasks_in_one_chunk(monkeypatch):
    monkeypatch.setattr(tasks, "_init_worker", lambda data_dir: None)
    items = [{"id": i, "g": i // 5} for i in range(18)]   # groups of 5, a short last one: 4 groups on 2 workers
    assert tasks._pool_chunks(items, 2, lambda t: t["g"]) == [(0, 5), (5, 10), (10, 15), (15, 18)]
    # 5 groups on 2 workers: the fifth would leave one worker idle to the end, so it is cut into one piece each
    items = [{"id": i, "g": i // 5} for i in range(25)]
    assert tasks._pool_chunks(items, 2, lambda t: t["g"]) == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23), (23, 25)]
    assert tasks._pool_chunks(items, 3, lambda t: t["g"]) == [(0, 5), (5, 10), (10, 15), (15, 19), (19, 23), (23, 25)]
    assert tasks._pool_chunks(items[:10], 4, lambda t: t["g"]) == [(0, 5), (5, 10)]   # fewer groups than workers
    res = tasks.run_tasks(_echo, items, data_dir="-", workers=2, progress=False, group=lambda t: t["g"])
    assert [r["id"] for r in res] == list(range(len(items)))
    for g in range(4):
        assert len({r["pid"] for r in res[5 * g:5 * g + 5]}) == 1   # a whole group ran in one process


def _pid_and(x):
    import os

    return os.getpid(), x


def test_run_forked_returns_results_in_order_from_forked_workers(monkeypatch):
    """Jobs close over unpicklable state (a lambda, a lock) and still run in forked processes; results come back in
    job order; one worker, or a call from inside a forked job, runs them here."""
    import os
    import threading
    from functools import partial

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    lock = threading.Lock()   # a lambda holding a lock cannot be pickled: the jobs must be inherited, not sent
    jobs = [lambda i=i: _pid_and((i, not lock.locked(), i * i)) for i in range(5)]
    got = tasks.run_forked(jobs)
    assert [x for _, x in got] == [(i, True, i * i) for i in range(5)]
    assert os.getpid() not in {pid for pid, _ in got}
    here = tasks.run_forked(jobs, workers=1)
    assert {pid for pid, _ in here} == {os.getpid()} and [x for _, x in here] == [x for _, x in got]
    nested = tasks.run_forked([lambda: tasks.run_forked([partial(_pid_and, 1), partial(_pid_and, 2)])] * 2)
    for inner in nested:                       # each nested call ran inside its (daemonic) forked worker
        assert len({pid for pid, _ in inner}) == 1 and [x for _, x in inner] == [1, 2]


def _sleep(seconds):
    import time

    time.sleep(seconds)
    return seconds


def _fail(message):
    raise LookupError(message)


def test_run_forked_raises_the_first_error_without_waiting_for_the_other_jobs(monkeypatch):
    """A bad file found by one half of `alvh validate` stops the run at once: the error comes back as raised (same
    type and message) and the still-running job is terminated, not awaited."""
    import os
    import time
    from functools import partial

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    t0 = time.perf_counter()
    with pytest.raises(LookupError, match="chain file x.csv row 3"):
        tasks.run_forked([partial(_sleep, 60.0), partial(_fail, "chain file x.csv row 3")])
    assert time.perf_counter() - t0 < 30.0
    assert tasks.run_forked([partial(_sleep, 0.01)] * 3) == [0.01] * 3   # the helper is usable again afterwards
