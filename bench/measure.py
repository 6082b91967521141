"""Wall time per stage and the peak resident memory of the whole process tree."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import psutil


class PeakRSS:
    """Samples RSS of a process (``root``, default this one) and all its descendants every ``interval`` s.

    Records the peak of the sum (the tree) and the largest single process (a worker, a JVM).
    """

    def __init__(self, root: int | None = None, interval: float = 0.05):
        self.interval = interval
        self.root = psutil.Process(root)
        self.tree = 0
        self.largest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        total = 0
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:  # the root has exited
            return
        for process in processes:
            try:
                rss = process.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            self.largest = max(self.largest, rss)
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


def main(run) -> int:
    """``python -m bench.<method> POSTS_XML --output RESULT.json [--tag T --labels A B]``: one run of a method.

    The bench runs each method this way, timing the process from exec to exit; the result file
    holds its answers (checked against the others) and its own in-process stage timings.
    """
    import argparse
    import json

    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--output", required=True)
    parser.add_argument("--tag", default="python")
    parser.add_argument("--labels", nargs=2, default=("python", "r"))
    args = parser.parse_args()
    start = time.perf_counter()
    result = run(args.path, tag=args.tag, labels=tuple(args.labels))
    result["total"] = result.pop("wall", None) or time.perf_counter() - start
    with open(args.output, "w") as f:
        json.dump(result, f)
    return 0
