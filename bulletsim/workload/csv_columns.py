"""Reading CSV columns of token counts with one-line errors that point at the bad row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def read_csv(path: Path, required: tuple[str, ...], dtype: dict | None = None) -> pd.DataFrame:
    """The CSV at `path`; ValueError if it is empty or lacks one of `required` columns."""
    try:
        df = pd.read_csv(path, dtype=dtype)
    except pd.errors.EmptyDataError:
        expected = ",".join(required) or "a CSV header line"
        raise ValueError(f"{path}: empty file; expected {expected}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise ValueError(f"{path}: not a CSV file ({reason})") from None
    require_columns(df, path, required)
    return df


def _clip(text: str, limit: int = 80) -> str:
    """A header as found, cut short: a JSON file read as CSV has its whole text as header."""
    return text if len(text) <= limit else text[:limit] + "..."


def require_columns(df: pd.DataFrame, path: Path, required: tuple[str, ...]) -> None:
    """ValueError if `df` lacks one of `required` or has no rows."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(required)}, "
            f"found {_clip(','.join(map(str, df.columns)))}"
        )
    if len(df) == 0:
        raise ValueError(f"{path}: no data rows after the header {','.join(required)}")


def _cell(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float | np.floating) and np.isnan(value):
        return "<empty>"
    return repr(value.item() if isinstance(value, np.generic) else value)


def _bad_row(path: Path, col: str, index: int, value: object, expected: str) -> ValueError:
    # Row numbers are 1-based data rows; the line number adds the header line.
    return ValueError(
        f"{path}: row {index + 1} (line {index + 2}) column {col} = {_cell(value)}; "
        f"expected {expected}"
    )


def numbers(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    """Column `col` as float64; ValueError naming the first non-numeric or empty cell."""
    raw = df[col]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        i = int(bad[0])
        raise _bad_row(path, col, i, raw.iloc[i], "a number")
    return values


def token_counts(df: pd.DataFrame, col: str, path: Path, minimum: int = 1) -> np.ndarray:
    """Column `col` as int64 token counts >= `minimum` (floats allowed if integral)."""
    values = numbers(df, col, path)
    bad = np.flatnonzero((values != np.floor(values)) | (values < minimum))
    if len(bad):
        i = int(bad[0])
        raise _bad_row(path, col, i, df[col].iloc[i], f"an integer token count >= {minimum}")
    return values.astype(np.int64)


def arrival_times(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    """Column `col` as seconds >= 0 (any order; see `sort_by_time`)."""
    values = numbers(df, col, path)
    bad = np.flatnonzero(values < 0)
    if len(bad):
        raise _bad_row(path, col, int(bad[0]), df[col].iloc[bad[0]], "seconds >= 0")
    return values


def sort_by_time(arrival_s: np.ndarray) -> tuple[np.ndarray, str | None]:
    """A stable order that sorts `arrival_s`, and a note if the file was not sorted."""
    if np.all(np.diff(arrival_s) >= 0):
        return np.arange(len(arrival_s)), None
    return np.argsort(arrival_s, kind="stable"), "rows were not in time order; sorted them"
