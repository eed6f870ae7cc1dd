"""Running one step on many units at once: parallel by default, stopping the others on a failure."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from pipeline.engine.values import Policy


def batches(units: Sequence[str], policy: Policy) -> list[list[str]]:
    """All units at once (``parallel``), or ``batch_size`` at a time (``rolling``)."""
    if policy.strategy == "parallel" or not units:
        return [list(units)]
    size = max(1, policy.batch_size)
    return [list(units[i : i + size]) for i in range(0, len(units), size)]


def each(
    units: Sequence[str],
    body: Callable[[str], None],
    on_failure: Callable[[str, BaseException], None] = lambda unit, exc: None,
) -> dict[str, BaseException]:
    """Run ``body`` for every unit in parallel; every failure, by unit (``on_failure`` sees it first).

    A BaseException that is not an Exception (a simulated kill, SystemExit) is re-raised once all
    threads have ended: nothing may handle it.
    """
    failures: dict[str, BaseException] = {}
    if not units:
        return failures
    if len(units) == 1:  # no thread for one unit: tracebacks and signals stay simple
        try:
            body(units[0])
        except Exception as exc:
            failures[units[0]] = exc
            on_failure(units[0], exc)
        return failures
    guard = threading.Lock()
    with ThreadPoolExecutor(max_workers=len(units), thread_name_prefix="unit") as pool:
        futures = {pool.submit(body, unit): unit for unit in units}
        for future in as_completed(futures):
            error = future.exception()
            if error is None:
                continue
            with guard:
                failures[futures[future]] = error
            if isinstance(error, Exception):
                on_failure(futures[future], error)
    for error in failures.values():
        if not isinstance(error, Exception):
            raise error
    return failures
