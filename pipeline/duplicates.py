"""Duplicates: questions whose ``Id`` an earlier question of the same site already has (a dump concatenated
twice, say), left out of the analytics and the classifier; the first one is kept.

Every first-pass task hands on its block's ids; one task per site, on a worker, puts them side by side
and returns only the duplicates (block, position, id), so the driver never holds the ids of a whole
site. The blocks that had any are then passed again without them (``first_pass(…, drop=…)``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def find(ids_by_block: dict[int, np.ndarray]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Block number → (positions, ids) of its questions whose id came earlier, in block order then row order."""
    numbers = sorted(ids_by_block)
    ids = np.concatenate([ids_by_block[n] for n in numbers] or [np.empty(0, "int64")])
    block = np.repeat(numbers, [len(ids_by_block[n]) for n in numbers])
    position = np.concatenate([np.arange(len(ids_by_block[n])) for n in numbers] or [np.empty(0, "int64")])
    repeated = pd.Series(ids).duplicated(keep="first").to_numpy()
    return {int(n): (position[repeated & (block == n)], ids[repeated & (block == n)])
            for n in np.unique(block[repeated])}
