"""A table of bad inputs (flags, files, configs) for `run`, `sweep` and `traces` (issue 7).

Each one must give: exit code 2, exactly one line starting with "error:", no traceback, no
results folder, and nothing changed on disk (the inputs it was given included).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.outdir import MARKER, SCHEMA

runner = CliRunner()
ENV = {"BULLETSIM_CACHE_DIR": "/nonexistent-bulletsim-cache", "BULLETSIM_TRACES_DIR": ""}
RUN = ("run", "--trace", "alpaca", "-n", "20", "-q")
SWEEP = ("sweep", "-n", "20", "--rates", "4", "--no-capacity", "--workers", "1", "-q")

# (id, command line, text the one error line must hold). "@x" names a file made by `inputs`.
CASES = [
    # results folders (issue 7, item 1)
    ("out-empty", (*RUN, "--out", ""), "--out: empty path"),
    ("out-dot", (*RUN, "--out", "."), "names the current folder"),
    ("out-parent", (*RUN, "--out", ".."), "names the current folder, a parent"),
    ("out-file", (*RUN, "--out", "@plain.txt"), "exists and is not a folder"),
    ("out-user-folder", (*RUN, "--out", "@mine"), "bulletsim did not write it"),
    ("out-under-file", (*RUN, "--out", "@plain.txt/run"), "not a writable folder"),
    ("out-sweep-folder", (*RUN, "--out", "@marked-sweep"), "not a run"),
    ("sweep-out-user-folder", (*SWEEP, "--out", "@mine"), "bulletsim did not write it"),
    ("sweep-out-empty", (*SWEEP, "--out", ""), "--out: empty path"),
    # settings, whichever policy runs (item 3)
    ("set-typo-other-policy", (*RUN, "--set", "bullet.window_layer=4"), "'bullet.window_layer'"),
    ("set-section-as-value", (*RUN, "--set", "bullet=3"), "bullet must be a table"),
    ("set-kv-as-value", (*RUN, "--set", "kv=3"), "kv must be a table"),
    ("set-wrong-type", (*RUN, "--set", "chunked.chunk_size='big'"), "must be int"),
    ("set-unknown-section", (*RUN, "--set", "bulet.window_layers=4"), "'bulet'"),
    ("set-no-equals", (*RUN, "--set", "kv.block_size"), "KEY=VALUE"),
    ("set-empty-key", (*RUN, "--set", "=3"), "empty key"),
    ("set-value-then-table", (*RUN, "--set", "kv=3", "--set", "kv.block_size=8"), "kv"),
    ("kv-memory-fraction", (*RUN, "--set", "kv.memory_fraction=2"), "kv.memory_fraction"),
    ("kv-block-size-0", (*RUN, "--set", "kv.block_size=0"), "kv.block_size must be >= 1"),
    ("kv-block-size-neg", (*RUN, "--set", "kv.block_size=-16"), "kv.block_size must be >= 1"),
    ("kv-blocks-0", (*RUN, "--kv-blocks", "0"), "kv.capacity_blocks"),
    ("two-ttft-slos", (*RUN, "--ttft-ms", "100", "--norm-ttft-ms", "2"), "give one"),
    ("tpot-negative", (*RUN, "--tpot-ms", "-1"), "slo.tpot_ms"),
    ("tpot-inf", (*RUN, "--tpot-ms", "inf"), "slo.tpot_ms"),
    ("cv-with-poisson", (*RUN, "--cv", "2", "--rate", "4"), "cv: applies only to gamma"),
    ("cv-zero", (*RUN, "--cv", "0", "--arrival", "gamma", "--rate", "4"), "cv: must be > 0"),
    ("chunk-flag-other-policy", (*RUN, "--policy", "bullet", "--chunk-size", "1024"), "bullet"),
    ("alias-conflict", (*RUN, "--policy", "chunked-1024", "--chunk-size", "2048"), "conflicts"),
    ("rate-zero", (*RUN, "--rate", "0"), "rate: must be > 0"),
    ("rate-negative", (*RUN, "--rate", "-3"), "rate: must be > 0"),
    ("rate-nan", (*RUN, "--rate", "nan"), "workload.rate must be a finite number"),
    ("rate-inf-with-duration", ("run", "--rate", "inf", "--duration", "10", "-q"), "give num"),
    ("n-zero", ("run", "-n", "0", "-q"), "num_requests: must be >= 1"),
    ("n-billion", ("run", "-n", "1000000000", "-q"), "GiB of memory"),
    ("duration-negative", (*RUN, "--duration", "-1"), "duration_s"),
    ("time-scale-with-poisson", (*RUN, "--time-scale", "2", "--rate", "4"), "time_scale"),
    ("max-total-tokens-1", (*RUN, "--max-total-tokens", "1"), "max_total_tokens"),
    ("over-length-unknown", (*RUN, "--over-length", "sideways"), "over_length"),
    ("arrival-trace-no-timestamps", (*RUN, "--arrival", "trace"), "has no timestamps"),
    ("tp-not-dividing", (*RUN, "--tp", "3"), "tp=3"),
    # tensor-parallel degrees (issue 13): beyond the 8-GPU node, zero, negative, KV heads,
    # an expert-parallel layout, a config file's model, and sweep's --set
    ("tp-16", (*RUN, "--model", "llama-3.1-70b", "--tp", "16"), "valid: 1, 2, 4, 8"),
    ("tp-64", (*RUN, "--model", "llama-3.1-70b", "--tp", "64"), "one node of 8 GPUs"),
    ("tp-0", (*RUN, "--tp", "0"), "tp=0 is not"),
    ("tp-negative", (*RUN, "--tp", "-2"), "tp=-2 is not"),
    ("tp-kv-heads", (*RUN, "--model", "qwen3-235b-a22b", "--tp", "6"), "4 KV heads"),
    ("tp-ep", (*RUN, "--model", "qwen3-235b-a22b-ep8", "--tp", "4"), "ep=8); valid: 8"),
    ("tp-hf-config", (*RUN, "--model-config", "@qwen3.json", "--tp", "16"), "valid: 1, 2, 4, 8"),
    ("sweep-tp-16", (*SWEEP, "--set", "tp=16"), "valid: 1, 2, 4, 8"),
    (
        "tp-weights-too-big",
        (*RUN, "--model", "llama-3.1-70b", "--tp", "1", "--gpu", "h200"),
        "tp that fit on h200: 2, 4, 8",
    ),
    # names (item 7): the valid ones are listed
    ("gpu-unknown", (*RUN, "--gpu", "b200"), "valid: a100, h100, h20, h200"),
    ("gpu-other-board", (*RUN, "--gpu", "h100-pcie"), "valid: a100"),
    ("model-unknown", (*RUN, "--model", "gpt-5"), "valid: llama-3.1-8b"),
    ("trace-unknown", (*RUN, "--trace", "nope"), "valid: splitwise"),
    ("policy-unknown", (*RUN, "--policy", "magic"), "valid: chunked, bullet"),
    ("latency-unknown", (*RUN, "--latency", "psychic"), "valid: auto, roofline, profile"),
    ("variant-unknown", (*RUN, "--variant", "sideways"), "prefill-first"),
    ("chunk-size-0", (*RUN, "--chunk-size", "0"), "chunk_size must be >= 1"),
    ("chunked-0", (*RUN, "--policy", "chunked-0"), "chunk_size must be >= 1"),
    # files (item 6)
    ("trace-file-folder", (*RUN, "--trace-file", "@folder"), "is a folder, not a file"),
    ("trace-file-missing", (*RUN, "--trace-file", "@missing.csv"), "not found"),
    ("trace-file-json-for-csv", ("run", "--trace-file", "@conv.json", "-q"), "--trace sharegpt"),
    ("traces-dir-missing", (*RUN, "--traces-dir", "@missing-dir"), "is not a folder"),
    # a folder given without the trace's file: never the embedded model (issue 16, fault 6)
    ("traces-dir-without-file", (*RUN, "--traces-dir", "@folder"), "holds no alpaca_data"),
    ("csv-without-file", (*RUN, "--trace", "csv"), "trace_file"),
    ("config-missing", (*RUN, "--config", "@missing.toml"), "config file not found"),
    ("config-folder", (*RUN, "--config", "@folder"), "is a folder, not a file"),
    ("model-config-folder", (*RUN, "--model-config", "@folder"), "is a folder, not a file"),
    ("design-folder", ("design", "@folder"), "is a folder, not a file"),
    ("measured-folder", ("fidelity", "--measured", "@folder"), "is a folder, not a file"),
    (
        "timestamp-unit-on-iso-times",
        (*RUN, "--trace", "csv", "--trace-file", "@az24.csv", "--timestamp-unit", "ms"),
        "ISO-8601 wall-clock times",
    ),
    ("config-bad-toml", (*RUN, "--config", "@bad.toml"), "bad.toml"),
    ("config-unknown-key", (*RUN, "--config", "@unknown.toml"), "'colour'"),
    ("tokenizer-unknown", (*RUN, "--tokenizer", "bpe"), "tokenizer: unknown"),
    ("tokenizer-file-missing", (*RUN, "--tokenizer", "tiktoken:@missing.bpe"), "not found"),
    # sweep (items 6, 7)
    ("sweep-rate-inf", (*SWEEP, "--rates", "4,inf"), "rates must be finite"),
    ("sweep-rates-empty", (*SWEEP, "--rates", ""), "--rates: empty"),
    ("sweep-rates-words", (*SWEEP, "--rates", "a,b"), "comma-separated numbers"),
    ("sweep-policy-unknown", (*SWEEP, "--policy", "foo"), "unknown policy 'foo'; valid: chunked"),
    ("sweep-chunk-conflict", (*SWEEP, "--policy", "chunked-2048", "--chunk-size", "1024"), "give"),
    ("sweep-target", (*SWEEP, "--target", "2"), "--target"),
    ("sweep-workers-0", (*SWEEP, "--workers", "0"), "--workers"),
    ("sweep-kv", (*SWEEP, "--set", "kv.block_size=0"), "kv.block_size"),
    ("sweep-gpu", (*SWEEP, "--gpu", "b200"), "valid: a100"),
    ("traces-list-missing-dir", ("traces", "list", "--traces-dir", "@missing-dir"), "not a folder"),
    # float parameters of every section (issue 17): NaN hung the event loop, inf / 1e308
    # made runs of 0 req/s that exited 0
    (
        "pdmux-handoff-nan",
        (*RUN, "--policy", "pdmux", "--set", "pdmux.handoff_ms=nan"),
        "pdmux.handoff_ms must be a finite time in [0, 3.6e+06] ms (one hour), got nan",
    ),
    ("pdmux-handoff-inf", (*RUN, "--policy", "pdmux", "--set", "pdmux.handoff_ms=inf"), "got inf"),
    (
        "pdmux-handoff-1e308",
        (*RUN, "--policy", "pdmux", "--set", "pdmux.handoff_ms=1e308"),
        "got 1e+308",
    ),
    (
        "slo-handoff-nan-other-section",
        (*RUN, "--policy", "pdmux-slo", "--set", "pdmux-slo.handoff_ms=nan"),
        "pdmux-slo.handoff_ms must be a finite time",
    ),
    ("bullet-remask-inf", (*RUN, "--set", "bullet.remask_us=inf"), "bullet.remask_us"),
    (
        "static-fraction-nan",
        (*RUN, "--set", "static-split.prefill_fraction=nan"),
        "static-split.prefill_fraction must be in (0, 1)",
    ),
    ("kv-reserve-nan", (*RUN, "--set", "kv.reserve_gib=nan"), "kv.reserve_gib"),
    ("time-scale-1e308", (*RUN, "--set", "workload.time_scale=1e308"), "workload.time_scale"),
    ("think-nan", (*RUN, "--think-time", "nan"), "workload.think_s"),
    ("toml-nan", (*RUN, "--policy", "pdmux", "--config", "@nan.toml"), "pdmux.handoff_ms"),
    ("sweep-policy-nan", (*SWEEP, "--policy", "pdmux:handoff_ms=nan"), "pdmux.handoff_ms"),
    (
        "sweep-set-nan",
        (*SWEEP, "--policy", "pdmux", "--set", "pdmux.handoff_ms=nan"),
        "pdmux.handoff_ms",
    ),
    # sweep inputs checked before any job (issue 17): each job was tried 3 times and a
    # results folder written
    ("sweep-traces-dir-missing", (*SWEEP, "--traces-dir", "@missing-dir"), "is not a folder"),
    ("sweep-traces-dir-without-file", (*SWEEP, "--traces-dir", "@folder"), "holds no ShareGPT"),
    ("sweep-traces-dir-file", (*SWEEP, "--traces-dir", "@plain.txt"), "is not a folder"),
    (
        "sweep-trace-file-missing",
        (*SWEEP, "--set", "workload.trace_file='in/missing.csv'"),
        "not found",
    ),
    ("sweep-executor", (*SWEEP, "--executor", "slurm"), "unknown executor 'slurm'"),
    ("sweep-rel-tol-nan", (*SWEEP, "--rel-tol", "nan"), "rel_tol (--rel-tol): in (0, 1), got nan"),
    ("sweep-target-nan", (*SWEEP, "--target", "nan"), "got nan"),
    ("design-rel-tol-nan", ("design", "@nan-design.toml"), "rel_tol (--rel-tol): in (0, 1)"),
    (
        "sweep-trace-file-corrupt",
        (*SWEEP, "--set", "workload.trace_file='in/conv.json'", "--trace", "splitwise-code"),
        "conv.json",
    ),
    # a --set for a policy that does not run would do nothing
    (
        "set-policy-not-run",
        (*RUN, "--policy", "pdmux", "--set", "pdmux-slo.tpot_target_frac=0.3"),
        "pdmux-slo is not a policy of this run (pdmux)",
    ),
    (
        "sweep-set-policy-not-run",
        (*SWEEP, "--set", "pdmux.handoff_ms=1"),
        "pdmux is not a policy of this run (bullet, chunked)",
    ),
]


def make_inputs(root: Path) -> None:
    d = root / "in"
    (d / "folder").mkdir(parents=True)
    (d / "plain.txt").write_text("keep\n")
    (d / "az24.csv").write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2024-05-10 00:00:00.009930+00:00,100,10\n2024-05-10 00:00:01.5+00:00,200,20\n"
    )
    (d / "conv.json").write_text(
        json.dumps([{"id": "a", "conversations": [{"from": "human", "value": "x " * 300}]}])
    )
    (d / "bad.toml").write_text("gpu = = 'h100'\n")
    fixture = Path(__file__).parent / "fixtures" / "model_configs" / "qwen3-235b-a22b.json"
    (d / "qwen3.json").write_text(fixture.read_text())
    (d / "unknown.toml").write_text("gpu = 'h100'\ncolour = 'blue'\n")
    (d / "nan.toml").write_text("[pdmux]\nhandoff_ms = nan\n")
    (d / "nan-design.toml").write_text(
        "[sweep]\nrates = [4.0]\nnum_requests = 20\nseeds = [0]\nrel_tol = nan\n"
        "[grid]\npolicy = ['chunked']\n"
    )
    (d / "mine" / "src").mkdir(parents=True)
    (d / "mine" / "src" / "main.py").write_text("a\n")
    (d / "marked-sweep").mkdir()
    marker = {"schema": SCHEMA, "kind": "sweep", "files": ["points.csv"]}
    (d / "marked-sweep" / MARKER).write_text(json.dumps(marker))
    (d / "marked-sweep" / "points.csv").write_text("label\n")


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


def test_the_table_is_big_enough():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("args, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_touches_nothing(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    make_inputs(tmp_path)
    before = snapshot(tmp_path)
    argv = [a.replace("@", "in/") if a.startswith("@") or ":@" in a else a for a in args]
    argv = [a.replace(":@", ":in/") for a in argv]
    res = runner.invoke(app, argv, env=ENV)
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert needle in lines[0], lines[0]
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    assert not (tmp_path / "results").exists()
    assert snapshot(tmp_path) == before
