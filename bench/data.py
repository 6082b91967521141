"""The benchmark input: a generated Posts.xml of a given size and seed, made once and reused."""

from __future__ import annotations

import json
import os
import time

from pipeline import generate

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "bench")


def ensure(size: str, seed: int = 0, directory: str = DEFAULT_DIR) -> str:
    """The path of the file for ``size``/``seed``, generating it first if it is not there yet.

    How long generating it took is kept beside it (``generation``): the generator's speed matters
    when the benchmarks ask for gigabytes.
    """
    path = os.path.join(directory, f"Posts-{size}-s{seed}.xml")
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        partial = path + ".partial"  # an interrupted generation is never taken for the real file
        start, cpu = time.perf_counter(), time.process_time()
        written = generate.generate(partial, generate.Options(size=generate.parse_size(size), seed=seed))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        with open(path + ".json", "w") as f:
            json.dump({**written, "path": path, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
                       "mb_per_s": round(written["bytes"] / 1e6 / seconds, 1),
                       "mb_per_cpu_s": round(written["bytes"] / 1e6 / cpu, 1)}, f)
        os.replace(partial, path)
    return path


def generation(path: str) -> dict | None:
    """What generating ``path`` took, if the bench generated it."""
    try:
        with open(path + ".json") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
