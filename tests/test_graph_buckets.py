"""Decode CUDA graphs run padded batches: the latency model prices a decode-only step's
linear kernels, norms and lm_head at the engine's captured batch size, and the live fidelity
and refit take those sizes from the run (`latency.graph_buckets`)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from bulletsim.core import WorkShape
from bulletsim.latency.graph_buckets import LIVE_ENGINE_BUCKETS, check_buckets, padded_rows
from bulletsim.latency.profile import PROFILE_DIR, ProfileLatency, read_profile
from bulletsim.live.engine_exec import common_engine_exec
from bulletsim.live.fidelity import resimulate_live
from bulletsim.live.refit import refit_profile, repriced
from bulletsim.live.rundir import graph_buckets

BASE = PROFILE_DIR / "h200__llama-3.1-8b.json"
RUNS = Path(__file__).parents[1] / "results/live-h200/runs"
REAL = RUNS / "splitwise-chunked-2048-r19-n500"
BUCKETS = (8, 16, 32, 48, 64)


@pytest.fixture(scope="module")
def plain() -> ProfileLatency:
    return ProfileLatency(read_profile(BASE))


@pytest.fixture(scope="module")
def padded(plain) -> ProfileLatency:
    return plain.with_exec({"decode_graph_buckets": list(BUCKETS)})


def decode(rows: int, ctx_per_request: int = 1000) -> WorkShape:
    return WorkShape(decode_tokens=rows, decode_ctx_tokens=rows * ctx_per_request,
                     logits_tokens=rows)  # fmt: skip


def test_padded_rows_is_the_smallest_bucket_that_holds_the_batch():
    assert [padded_rows(n, BUCKETS) for n in (1, 8, 9, 32, 33, 48, 49, 64)] == [
        8, 8, 16, 32, 48, 48, 64, 64]  # fmt: skip
    assert padded_rows(65, BUCKETS) == 65  # past the largest: eager, exact rows
    assert padded_rows(33, ()) == 33


@pytest.mark.parametrize(
    "bad", [[8, 8], [16, 8], [0, 8], [8.5], "8,16", [True, 8], [8, 10**30], list(range(1, 2000))]
)
def test_bad_bucket_lists_are_refused_naming_where(bad):
    with pytest.raises(ValueError, match="exec.decode_graph_buckets"):
        check_buckets(bad, "exec.decode_graph_buckets")


def test_a_profile_with_bad_buckets_is_refused_at_load():
    doc = copy.deepcopy(read_profile(BASE))
    doc["exec"]["decode_graph_buckets"] = [64, 32]
    with pytest.raises(ValueError, match="decode_graph_buckets must be strictly increasing"):
        ProfileLatency(doc)


def test_a_decode_step_pays_its_buckets_rows_in_linear_kernels_only(plain, padded):
    n = 132
    # 33 requests run the 48-row graph: linear kernels and head as 48 rows, attention as 33
    got = sum(padded.time_split_s(decode(33), n))
    lin48 = sum(plain._linear_parts(48, n))
    attn33 = sum(plain._attn_decode_parts(decode(33), n))
    head48 = sum(plain._op_parts("final_norm", decode(48), n)) + sum(
        plain._op_parts("lm_head", decode(48), n))  # fmt: skip
    ks = plain._kscale  # the profile's kernel scale (1, 1 when not refitted)
    assert ks == (1.0, 1.0)
    assert got == pytest.approx(plain.num_layers * (lin48 + attn33) + head48, rel=1e-9)
    assert got > sum(plain.time_split_s(decode(33), n))
    # a batch that fills its bucket and one past the largest bucket are priced as before
    for rows in (48, 80):
        assert padded.predict(decode(rows), n) == pytest.approx(plain.predict(decode(rows), n))


def test_prefill_and_mixed_work_is_not_padded(plain, padded):
    mixed = WorkShape(prefill_tokens=300, prefill_attn_pairs=45150.0, prefill_kv_tokens=300,
                      num_prefill_seqs=1, decode_tokens=33, decode_ctx_tokens=33000,
                      logits_tokens=34)  # fmt: skip
    assert padded.predict(mixed, 132) == plain.predict(mixed, 132)


def test_with_exec_leaves_the_model_it_came_from_unchanged(plain, padded):
    assert plain.graph_buckets == ()
    assert padded.graph_buckets == BUCKETS
    assert "decode_graph_buckets" not in plain.doc.get("exec", {})


def test_the_live_engine_records_its_buckets_and_the_run_dir_reads_them():
    assert graph_buckets(REAL) == LIVE_ENGINE_BUCKETS
    both = common_engine_exec([REAL, RUNS / "sharegpt-bullet-green-ctx-r38.1-n500"])
    assert both["decode_graph_buckets"] == list(LIVE_ENGINE_BUCKETS)  # fmt: skip


def _copy_with_buckets(src: Path, dst: Path, buckets) -> Path:
    shutil.copytree(src, dst)
    live = json.loads((dst / "live.json").read_text())
    if buckets is None:
        live["executor"].pop("decode_graph_buckets")
    else:
        live["executor"]["decode_graph_buckets"] = buckets
    (dst / "live.json").write_text(json.dumps(live))
    return dst


def test_runs_of_engines_with_other_buckets_are_not_refitted_together(tmp_path):
    other = _copy_with_buckets(REAL, tmp_path / "other", [8, 16, 32, 64])
    with pytest.raises(
        ValueError, match="differ in live.json executor.decode_graph_buckets .*apart"
    ):
        refit_profile(read_profile(BASE), [REAL, other])
    old = _copy_with_buckets(REAL, tmp_path / "old", None)  # written before they were recorded
    assert graph_buckets(old) == ()
    bad = _copy_with_buckets(REAL, tmp_path / "bad", [16, 8])
    with pytest.raises(ValueError, match="live.json: executor.decode_graph_buckets"):
        graph_buckets(bad)


def test_the_refit_prices_and_keeps_the_runs_buckets():
    new, report = refit_profile(read_profile(BASE), [REAL])
    assert new["exec"]["decode_graph_buckets"] == list(LIVE_ENGINE_BUCKETS)
    assert report["decode_graph_buckets"] == list(LIVE_ENGINE_BUCKETS)
    assert ProfileLatency(new).graph_buckets == LIVE_ENGINE_BUCKETS


def test_repricing_a_run_pads_its_decode_graphs_even_under_a_profile_without_buckets(tmp_path):
    doc = read_profile(BASE)
    a = repriced(doc, REAL)
    b = repriced(doc, _copy_with_buckets(REAL, tmp_path / "r", None))
    dec_a = a[(a["phase"] == "decode") & (a["sms"] == "all")]["median_pct"].item()
    dec_b = b[(b["phase"] == "decode") & (b["sms"] == "all")]["median_pct"].item()
    assert dec_a > dec_b  # padded rows cost more: the median error moves up


def test_fidelity_clock_pads_while_the_policy_predicts_as_the_live_one_did():
    f = resimulate_live(REAL, BASE)
    meta = f.sim.meta
    assert "timing_model" in meta, "a padded clock beside the unpadded policy model"
    assert f.sim.latency.graph_buckets == ()


def test_runs_whose_engines_differ_in_pdl_are_not_refitted_together(tmp_path):
    """A tester's finding: round R2's engine recorded no programmatic dependent launch in its
    decode graphs, session S4's did; the refit fits one engine's graph overheads."""
    s4 = RUNS.parent / "runs-s4" / REAL.name
    other = tmp_path / "nopdl"
    shutil.copytree(s4, other)
    live = json.loads((other / "live.json").read_text())
    live["executor"].pop("decode_graph_pdl", None)
    (other / "live.json").write_text(json.dumps(live))
    with pytest.raises(ValueError, match="differ in live.json executor.decode_graph_pdl"):
        refit_profile(read_profile(BASE), [s4, other])


def test_a_refit_whose_terms_no_profile_may_hold_is_one_line_naming_the_runs(monkeypatch):
    """A tester's finding: decode iterations with no context made the fitted graph step dearer
    per layer than the eager one, and the write of the refitted profile failed with a
    traceback naming a temporary file."""
    from bulletsim.live import refit as R

    real = R.fit_terms

    def odd(*a, **k):
        fitted, names = real(*a, **k)
        return fitted | {"graph_layer_overhead_s": fitted["layer_overhead_s"] + 1e-4}, names

    monkeypatch.setattr(R, "fit_terms", odd)
    with pytest.raises(ValueError, match=r"refit on .*r19-n500 gives no valid profile \(the "):
        refit_profile(read_profile(BASE), [REAL])


def test_fidelity_says_when_a_gpu_run_recorded_no_decode_graph_sizes(tmp_path):
    from typer.testing import CliRunner

    from bulletsim.cli import app

    old = _copy_with_buckets(REAL, tmp_path / "old", None)
    res = CliRunner().invoke(app, ["fidelity", str(old), "--profile", str(BASE)])
    assert res.exit_code == 0, res.output
    assert "records no decode-graph batch sizes" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["fidelity", str(REAL), "--profile", str(BASE)])
    assert "records no decode-graph" not in " ".join(res.output.split())
