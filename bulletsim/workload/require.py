"""`python -m bulletsim.workload.require DIR TRACE...`: exit 2 with one line unless folder DIR
holds a real file of every named trace (regenerate scripts check this before any sweep, so a
wrong folder can never regenerate committed results from the embedded models)."""

from __future__ import annotations

import sys

from bulletsim.workload.catalog import trace_info
from bulletsim.workload.resolve import find_trace_file


def require(traces_dir: str, names: list[str]) -> list[str]:
    """The file found for each trace; ValueError/FileNotFoundError (one line) for the first
    trace whose file `traces_dir` lacks, or an unknown name."""
    return [str(find_trace_file(trace_info(n), None, traces_dir)) for n in names]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m bulletsim.workload.require TRACES_DIR TRACE...", file=sys.stderr)
        return 2
    try:
        require(args[0], args[1:])
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
