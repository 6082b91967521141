"""Wall time per stage and the peak resident memory of the whole process tree."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import psutil


class PeakRSS:
    """Samples RSS of this process and all its descendants (Dask workers, nannies) every ``interval`` s.

    Records the peak of the sum (the tree) and the largest single child (a worker).
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.tree = 0
        self.child = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                rss = child.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            self.child = max(self.child, rss)
        self.tree = max(self.tree, total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakRSS:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


class Stages:
    """``with stages("parse"):`` adds the block's wall seconds to that stage."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


class Result(dict):
    """What one method produced and how long it took; compared across methods by ``agreement``.

    Keys: ``stages`` (name → wall seconds, in order), ``total``, ``questions``, ``cooccurrence``
    (every tag beside the analytics tag → count), ``accuracy``; optionally ``wall``, the method's own
    wall seconds when it does checking work after the job that must not be timed.
    """
