"""One float64 matrix from a micro-batch of event values (pure: no I/O, no model)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

MissingPolicy = Literal["nan", "raise"]


class MissingFeature(KeyError):
    """An event lacks a feature field (or holds ``None`` there) and the policy is ``"raise"``."""


def feature_matrix(
    values: Sequence[Any], features: Sequence[str], *, missing: MissingPolicy = "nan"
) -> NDArray[np.float64]:
    """Rows = ``values`` (mappings), columns = ``features``, as one C-contiguous float64 array.

    A missing field or a ``None`` becomes NaN (``missing="nan"``) or raises
    :class:`MissingFeature` (``"raise"``); a value that is not a number raises
    ``ValueError``/``TypeError`` as ``float()`` does.
    """
    n, k = len(values), len(features)
    if n == 0 or k == 0:
        return np.empty((n, k), dtype=np.float64)
    get = itemgetter(*features)
    try:  # fast path: every field present and numeric
        if k == 1:
            flat = np.fromiter(map(get, values), dtype=np.float64, count=n)
        else:
            flat = np.fromiter(chain.from_iterable(map(get, values)), dtype=np.float64, count=n * k)
        return flat.reshape(n, k)
    except (KeyError, TypeError, ValueError):
        pass
    out = np.empty((n, k), dtype=np.float64)
    for i, value in enumerate(values):
        out[i] = _row(value, features, missing)
    return out


def _row(value: Any, features: Sequence[str], missing: MissingPolicy) -> list[float]:
    if not isinstance(value, Mapping):
        raise TypeError(f"predict needs mapping values (dicts), got {type(value).__name__}")
    row: list[float] = []
    for f in features:
        v = value.get(f)
        if v is None:
            if missing == "raise":
                raise MissingFeature(f"event has no value for feature {f!r}")
            row.append(np.nan)
        else:
            row.append(float(v))
    return row
