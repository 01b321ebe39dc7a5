"""Where the tasks of a sweep run: this process, local worker processes, or a Dask cluster.

Every executor has the same shape: `submit_all(fn, tasks)` yields `(index, result or exception)` as tasks finish,
in any order. Results do not depend on the executor: a task's numbers come from its own inputs only.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol

from accelsim.errors import ConfigError, require

log = logging.getLogger(__name__)

Outcome = tuple[int, Any]  # (task index, its result, or the exception that stopped it)


class Executor(Protocol):
    name: str
    workers: int

    def submit_all(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Outcome]: ...

    def close(self, wait: bool = True) -> None:
        """Release the workers; `wait=False` (after an interruption) does not wait for running tasks."""


class InlineExecutor:
    """Runs tasks one after another in this process (one worker, or a single task: no start-up cost)."""

    name = "inline"
    workers = 1

    def submit_all(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Outcome]:
        for i, task in enumerate(tasks):
            try:
                yield i, fn(task)
            except Exception as exc:  # the task function records point failures itself; this is a crash
                yield i, exc

    def close(self, wait: bool = True) -> None:
        pass


def _worker_start(threads: int, parent: int) -> None:
    """Worker start-up: the functional pass's Numba kernels run `threads` threads, so workers do not oversubscribe;
    and the worker exits within a second of its parent's death (a SIGKILLed sweep leaves no orphans behind)."""
    import numba

    # numba ships py.typed, but numba/core/config.py sets its NUMBA_* settings through globals() at import
    # (_EnvReloader.process_environ), so no type checker sees them: the attribute exists at run time.
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="accelsim-parent-watch").start()


def _exit_with_parent(parent: int, period_s: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(period_s)
    os._exit(1)  # orphaned: nobody will read our results


class ProcessExecutor:
    """Local worker processes (spawned, so no thread or Numba state of this process is inherited), sharing the
    cores: each worker's parallel kernels get cores / workers threads."""

    name = "processes"

    def __init__(self, workers: int):
        self.workers = workers
        threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_worker_start, initargs=(threads, os.getpid()))

    def submit_all(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Outcome]:
        futures: dict[Future, int] = {self._pool.submit(fn, task): i for i, task in enumerate(tasks)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=futures.__getitem__):
                    exc = fut.exception()
                    yield futures[fut], (exc if exc is not None else fut.result())
        finally:
            for fut in pending:
                fut.cancel()

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)


class DaskExecutor:
    """A Dask cluster: `tcp://host:port` of a running scheduler, a scheduler file (.json), or a `distributed.Client`.

    Workers need accelsim installed (the same version) and the files the sweep names (weights, images) at the same
    paths; results come back to this process, which alone writes the sweep folder.
    """

    name = "dask"

    def __init__(self, scheduler: Any):
        require("distributed", "dask", "cluster sweeps")
        from distributed import Client

        self._own = not isinstance(scheduler, Client)
        if not self._own:
            self.client = scheduler
        else:
            text = str(scheduler)
            try:
                if text.endswith(".json") or Path(text).is_file():
                    self.client = Client(scheduler_file=text, timeout="30s")
                else:
                    self.client = Client(text, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise ConfigError(f"--scheduler {text}: cannot reach a Dask scheduler there ({exc}); expected the "
                                  "address of a running scheduler (tcp://host:8786) or its scheduler file") from None
        self.workers = max(1, sum(self.client.nthreads().values()))
        self.address = self.client.scheduler.address

    def submit_all(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Outcome]:
        from distributed import as_completed

        futures = {self.client.submit(fn, task, pure=False): i for i, task in enumerate(tasks)}
        try:
            for fut in as_completed(list(futures)):
                if fut.status == "finished":
                    yield futures[fut], fut.result()
                elif fut.status == "error":
                    yield futures[fut], fut.exception()
                else:  # cancelled or lost with its worker
                    yield futures[fut], RuntimeError(f"the task was {fut.status} on the Dask cluster")
        finally:
            for fut in futures:
                fut.release()

    def close(self, wait: bool = True) -> None:
        if self._own:
            self.client.close()


def make_executor(workers: int | None = None, scheduler: Any = None, tasks: int | None = None) -> Executor:
    """The executor for `--workers N` / `--scheduler ADDRESS`: Dask if a scheduler is named, else local processes
    (default: one per core, never more than there are tasks), in this process when one worker suffices."""
    if scheduler is not None:
        return DaskExecutor(scheduler)
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers must be a positive number of processes, got {workers!r}")
    n = workers or os.cpu_count() or 1
    if tasks is not None:
        n = min(n, max(tasks, 1))
    return InlineExecutor() if n == 1 else ProcessExecutor(n)
