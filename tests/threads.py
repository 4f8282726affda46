"""Running test work in several threads at once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable


def run_together(
    targets: Iterable[Callable[[], object]], switch_interval: float | None = None
) -> list[BaseException]:
    """Start a thread for each target, wait for all, and return what they raised (an
    exception in a thread does not fail a test by itself). With `switch_interval`,
    Python switches threads that often meanwhile (``sys.setswitchinterval``), so that
    races show up: it is put back afterwards."""
    raised: list[BaseException] = []

    def guarded(target: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as e:  # reported to the caller
                raised.append(e)

        return run

    threads = [threading.Thread(target=guarded(t)) for t in targets]
    old = sys.getswitchinterval()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    return raised
