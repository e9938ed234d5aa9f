"""Reading a live run's results directory (what `bulletsim live` wrote).

`check_live_runs` vets every folder a command was given before any long work (a simulation,
a fit): that it exists, is a folder, holds every file a live run writes (`LIVE_FILES`), that
its JSON files parse and that it is a live run, that its tables have the columns the
commands read and its files come from one run (`runcheck`), and that no folder is given
twice. Each fault is one line naming the folder and the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bulletsim.live.run_config import live_config
from bulletsim.live.runcheck import check_one_run, data_digests

SM_BINS = (0, 32, 64, 96, 131, 132)  # SM-count groups of error tables (132 = whole GPU)
# Every file `bulletsim live` writes that fidelity and the refit read (live.json: the
# executor, and whether its host times were measured on a GPU).
LIVE_FILES = ("config.json", "summary.json", "live.json", "requests.parquet", "iterations.parquet")
TABLE_FILES = ("requests.parquet", "iterations.parquet")  # a run's data: equal in a copy


def read_json_object(path: Path) -> dict:
    """The JSON object in `path`; ValueError naming the file when it is not one."""
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a JSON file (not text)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e.msg}, line {e.lineno})") from None
    except RecursionError:
        raise ValueError(f"{path} is not a live run's JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    return data


def check_live_run(run_dir: str | Path) -> Path:
    """`run_dir` as a Path if it is a live run's results folder; else FileNotFoundError (it does
    not exist, or a file is missing) or ValueError (not a folder, a file that does not parse,
    not a live run), one line naming what is wrong."""
    d = Path(run_dir).expanduser()
    if not d.exists():
        raise FileNotFoundError(f"live run folder {d} does not exist")
    if not d.is_dir():
        raise ValueError(f"live run {d} is a file, not a folder (`bulletsim live --out DIR`)")
    missing = [n for n in LIVE_FILES if not (d / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{d} is not a live run folder: no {', '.join(missing)} (`bulletsim live` writes "
            f"{', '.join(LIVE_FILES)})"
        )
    # one command asks about a run many times (its tables, live.json, engine, host times):
    # the full check runs again only when one of its files changed
    key = (d.resolve(), tuple(_stamp(d / n) for n in LIVE_FILES))
    if key in _CHECKED:
        return d
    _check_files(d)
    if len(_CHECKED) >= _CHECKED_MAX:
        _CHECKED.clear()
    _CHECKED.add(key)
    return d


_CHECKED: set[tuple] = set()  # (folder, its files' stamps) that passed `_check_files`
_CHECKED_MAX = 4096


def _stamp(f: Path) -> tuple[int, int, int]:
    st = f.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def _check_files(d: Path) -> None:
    """`check_live_run`'s checks of the files of run folder `d` (all present)."""
    summary = read_json_object(d / "summary.json")
    if not str(summary.get("engine", "")).startswith("live:"):
        raise ValueError(f"{d} is not a live run (its summary.json names no live engine)")
    meta = read_json_object(d / "config.json")
    config = meta.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{d / 'config.json'} has no config section")
    # before any simulation: the config the re-simulation will run, or its error with the file
    num_layers = live_config(meta, d / "config.json").model_spec().num_layers
    live = read_json_object(d / "live.json")
    if "executor" not in live:
        raise ValueError(f"{d / 'live.json'} has no executor section")
    if not isinstance(live["executor"], dict):
        raise ValueError(f"{d / 'live.json'}: executor must be an object, got "
                         f"{type(live['executor']).__name__}")  # fmt: skip
    measured = live["executor"].get("measured", False)
    if not isinstance(measured, bool):
        raise ValueError(f"{d / 'live.json'}: executor.measured must be true or false, got "
                         f"{measured!r}")  # fmt: skip
    for name in TABLE_FILES:
        _parquet_schema(d / name)  # the footer only: cheap, catches a truncated file
    check_one_run(d, summary, config, live, num_layers)  # columns, values, files of one run


def check_live_runs(run_dirs: list[str | Path]) -> list[Path]:
    """Every folder checked (`check_live_run`), before any work; ValueError for none given or
    one given twice, by its path or as a copy (the same tables: equal sha256 of
    requests.parquet and iterations.parquet, computed here, as runs written before live.json
    recorded them have none; or equal data in them, saved again as other bytes): it would
    count twice in a fit or a table."""
    if not run_dirs:
        raise ValueError("no live run folders given (`bulletsim live --out DIR` writes one)")
    out, seen, data = [], {}, {}
    for r in run_dirs:
        d = check_live_run(r)
        key = d.resolve()
        if key in seen:
            raise ValueError(f"live run {r} is given twice (also as {seen[key]})")
        seen[key] = r
        same = tuple(data_digests(d, TABLE_FILES).values())  # equal bytes or re-saved
        if same in data:
            raise ValueError(
                f"live runs {data[same]} and {r} hold the same requests and iterations "
                f"(equal data in {' and '.join(TABLE_FILES)}: a copy of one run); give each "
                "run once"
            )
        data[same] = r
        out.append(d)
    return out


def _not_parquet(path: Path, e: Exception) -> ValueError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return ValueError(f"{path} is not a readable Parquet file ({first})")


def _parquet_schema(path: Path) -> None:
    import pyarrow.parquet as pq

    try:
        pq.read_schema(path)
    except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise _not_parquet(path, e) from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (ValueError, OSError) as e:
        raise _not_parquet(path, e) from None


def read_live_run(run_dir: str | Path) -> tuple[dict, dict, pd.DataFrame, pd.DataFrame]:
    """(config.json, summary.json, requests, iterations) of a live run; FileNotFoundError /
    ValueError naming what is missing or unreadable (`check_live_run`)."""
    d = check_live_run(run_dir)
    return (
        read_json_object(d / "config.json"),
        read_json_object(d / "summary.json"),
        _read_parquet(d / "requests.parquet"),
        _read_parquet(d / "iterations.parquet"),
    )


def host_times_measured(run_dir: str | Path) -> bool:
    """Whether the run's per-iteration host times were measured by a GPU engine's loop
    (live.json's executor says `measured`; the fake executor's are its own, not a host's)."""
    d = check_live_run(run_dir)
    return bool(read_json_object(d / "live.json")["executor"].get("measured"))


FAKE_FIT_NOTE = (
    "every run is from the fake executor (live.json: measured false): the fit is of the "
    "latency model's predicted times, not of a GPU (for tests only)"
)


def check_refit_runs(run_dirs: list[Path]) -> str | None:
    """Runs a refit may use together: all measured on a GPU (None) or all from the fake
    executor (`FAKE_FIT_NOTE`, to print). ValueError, one line, when they are mixed: a fake
    run's times are predictions and would be fitted as if measured."""
    measured = {d: host_times_measured(d) for d in run_dirs}
    fake = [str(d) for d, m in measured.items() if not m]
    if not fake:
        return None
    if len(fake) == len(run_dirs):
        return FAKE_FIT_NOTE
    real = [str(d) for d, m in measured.items() if m]
    raise ValueError(
        f"refit refused: {', '.join(fake)} ran on the fake executor (live.json: measured "
        f"false; its times are predictions) and {', '.join(real)} on a GPU; mixing them "
        "fits predicted times as measured ones: give only GPU runs (or only fake runs, "
        "e.g. for tests)"
    )


def graph_buckets(run_dir: str | Path) -> tuple[int, ...]:
    """The batch sizes the run's decode CUDA graphs were captured at (live.json's
    executor.decode_graph_buckets; () for a run without graphs or written before they were
    recorded). ValueError (one line naming the file) for a malformed list."""
    from bulletsim.latency.graph_buckets import check_buckets

    d = check_live_run(run_dir)
    ex = read_json_object(d / "live.json")["executor"]
    return check_buckets(ex.get("decode_graph_buckets", []),
                         f"{d / 'live.json'}: executor.decode_graph_buckets")  # fmt: skip
