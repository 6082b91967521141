"""The benchmark input: a generated Posts.xml of a given size and seed, made once and reused."""

from __future__ import annotations

import os

from pipeline import generate

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "bench")


def ensure(size: str, seed: int = 0, directory: str = DEFAULT_DIR) -> str:
    """The path of the file for ``size``/``seed``, generating it first if it is not there yet."""
    path = os.path.join(directory, f"Posts-{size}-s{seed}.xml")
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        partial = path + ".partial"  # an interrupted generation is never taken for the real file
        generate.generate(partial, generate.Options(size=generate.parse_size(size), seed=seed))
        os.replace(partial, path)
    return path
