"""Entity rows given as a pandas DataFrame or a pyarrow Table, and results as Arrow.

Conversions are columnar (pyarrow compute / numpy): a timestamp column of any unit,
time zone or none (naive means UTC) becomes int milliseconds, floored, so a row at
``10.9 ms`` sees the events at or before ``10 ms`` (there are no finer event times).
pyarrow and pandas are imported only here and only when used
(``pip install 'eventml[offline]'``).
"""

from __future__ import annotations

from typing import Any

from eventml.features.spec import Feature, FeatureView

INSTALL = "pip install 'eventml[offline]'"
_PER_MS = {"s": (1_000, 1), "ms": (1, 1), "us": (1, 1_000), "ns": (1, 1_000_000)}  # (times, floor-div)


def pyarrow() -> Any:
    """The pyarrow module, or an ImportError saying what to install."""
    try:
        import pyarrow as pa
    except ImportError as e:  # pragma: no cover - the offline extra is installed in dev
        raise ImportError(f"entity rows as DataFrames and Arrow/Parquet output need pyarrow and pandas: {INSTALL}") from e
    return pa


def as_table(rows: Any) -> Any | None:
    """``rows`` as a pyarrow Table if it is a DataFrame, a Table or a RecordBatch; ``None``
    for anything else (a sequence of ``(key, time)`` pairs). pandas is never imported
    here: a DataFrame's own module says what it is."""
    module = type(rows).__module__.split(".", 1)[0]
    if module == "pandas":
        if not hasattr(rows, "columns"):
            raise ValueError(f"entity rows: want a DataFrame, a pyarrow Table or (key, time) pairs, not a {type(rows).__name__}")
        return pyarrow().Table.from_pandas(rows, preserve_index=False)
    if module == "pyarrow":
        pa = pyarrow()
        if isinstance(rows, pa.Table):
            return rows
        if isinstance(rows, pa.RecordBatch):
            return pa.Table.from_batches([rows])
        raise ValueError(f"entity rows: want a pyarrow Table or RecordBatch, not a {type(rows).__name__}")
    return None


def entity_column_of(view: FeatureView, entity_column: str | None) -> str:
    if entity_column is not None:
        return entity_column
    if callable(view.entity):
        raise ValueError(f"feature view {view.name!r} finds its entity with a function: pass entity_column=")
    return view.entity


def keys_and_times(table: Any, entity: str, timestamp: str, features: list[str]) -> tuple[list[Any], list[int]]:
    """The entity keys (Python values) and the times (int ms) of a table's rows."""
    pa = pyarrow()
    names = table.column_names
    for name, what in ((entity, "the view's entity; or pass entity_column="), (timestamp, "or pass timestamp_column=")):
        if name not in names:
            raise ValueError(f"entity rows have no column {name!r} ({what}); they have {names}")
    clash = sorted(set(names) & set(features))
    if clash:
        raise ValueError(f"entity rows already have columns named like features: {clash}")
    column = table.column(timestamp)
    if column.null_count:
        raise ValueError(f"column {timestamp!r} has {column.null_count} null timestamps")
    kind = column.type
    if pa.types.is_timestamp(kind):
        times, per = _PER_MS[kind.unit]
        ms = column.cast(pa.int64()).to_numpy()
        ms = ms * times if times != 1 else ms // per
    elif pa.types.is_integer(kind):
        ms = column.cast(pa.int64()).to_numpy()
    else:
        raise ValueError(
            f"column {timestamp!r} must hold int milliseconds or timestamps (datetime64), not {kind}"
        )
    return table.column(entity).to_pylist(), ms.tolist()


def arrow_type(feature: Feature) -> Any:
    """The Arrow type of a feature's values, where the aggregator fixes it (else inferred)."""
    pa = pyarrow()
    if feature.kind == "since_last":
        return pa.float64()
    name = type(feature.aggregator).__name__
    return {"Count": pa.int64(), "CountDistinct": pa.int64(), "Mean": pa.float64()}.get(name)


def feature_arrays(view: FeatureView, names: list[str], columns: list[tuple[Any, ...]]) -> list[Any]:
    """One Arrow array per feature (``columns``: its values, in row order)."""
    pa = pyarrow()
    by_name = {f.name: f for f in view.features}
    out = []
    for name, values in zip(names, columns, strict=True):
        kind = arrow_type(by_name[name])
        array = pa.array(values, type=kind)
        if pa.types.is_null(array.type):  # nothing in range anywhere: still a number column
            array = array.cast(pa.float64())
        out.append(array)
    return out
