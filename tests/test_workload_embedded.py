"""The embedded default models: provenance, size, fidelity to the real files, rebuildability."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from bulletsim.workload.arrival_profile import gap_cv
from bulletsim.workload.build_defaults import SOURCES, build_defaults
from bulletsim.workload.embedded import DATA_DIR, load_embedded

MODELS = sorted(SOURCES)


@pytest.mark.parametrize("json_name", MODELS)
def test_model_is_small_and_names_its_source(shared_traces_dir, json_name):
    path = DATA_DIR / json_name
    # 64 KB: the Azure models hold the real count per second (3,500 numbers) and a length
    # model per 2 minutes, which the embedded-vs-real fidelity test needs
    assert path.stat().st_size < 64_000
    source = json.loads(path.read_text())["source"]
    real = shared_traces_dir / source["file"]
    assert source["sha256"] == hashlib.sha256(real.read_bytes()).hexdigest()
    assert source["command"] == "bulletsim traces build-defaults --from DIR"


@pytest.mark.parametrize("json_name", MODELS)
def test_model_reproduces_real_marginals(shared_traces_dir, json_name):
    file, reader = SOURCES[json_name]
    real = reader(shared_traces_dir / file)
    prompt, output = load_embedded(json_name).lengths.sample(np.random.default_rng(0), 200_000)
    assert load_embedded(json_name).source_rows == len(real) + real.num_empty
    for fake, true in ((prompt, real.prompt_tokens), (output, real.output_tokens)):
        assert fake.mean() == pytest.approx(true.mean(), rel=0.02)
        for q in (0.5, 0.9):
            # 4 % or one token: Alpaca's lengths are small integers.
            assert abs(np.quantile(fake, q) - np.quantile(true, q)) <= max(
                1.0, 0.04 * np.quantile(true, q)
            )


@pytest.mark.parametrize(
    "json_name, spearman", [("sharegpt.json", -0.33), ("arxiv-long.json", 0.70)]
)
def test_model_keeps_dependence(json_name, spearman):
    prompt, output = load_embedded(json_name).lengths.sample(np.random.default_rng(1), 50_000)
    ranks = [np.argsort(np.argsort(x)) for x in (prompt, output)]
    assert np.corrcoef(*ranks)[0, 1] == pytest.approx(spearman, abs=0.03)


@pytest.mark.parametrize(
    "json_name, rate, cv",
    [("splitwise-conv.json", 5.530, 1.094), ("splitwise-code.json", 2.567, 13.15)],
)
def test_model_arrivals_match_rate_and_cv(json_name, rate, cv):
    profile = load_embedded(json_name).arrivals
    assert profile.mean_rate == pytest.approx(rate, abs=1e-3)
    # Ten passes over the hour-long profile, so the bursty code trace averages out.
    t = profile.sample(np.random.default_rng(0), None, 36_000.0)
    assert len(t) / t[-1] == pytest.approx(rate, rel=0.03)
    assert gap_cv(t) == pytest.approx(cv, rel=0.06)


def test_build_defaults_reproduces_the_committed_models(shared_traces_dir, tmp_path):
    written = build_defaults(shared_traces_dir, tmp_path)
    assert sorted(p.name for p in written) == MODELS
    for path in written:
        assert path.read_text() == (DATA_DIR / path.name).read_text(), path.name


def test_build_defaults_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="AzureLLMInferenceTrace_conv.csv.*download"):
        build_defaults(tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_length_stretches_keep_their_place_in_time(tmp_path):
    """A quiet stretch shares its neighbour's model; every later stretch keeps its own."""
    from bulletsim.workload.build_defaults import SEGMENT_S, build_document
    from bulletsim.workload.embedded import EmbeddedTrace
    from bulletsim.workload.length_model import LengthModel
    from bulletsim.workload.table import TraceTable

    # stretches 0, 2, 3 hold 100 requests each with prompts 100, 300, 400 tokens; stretch 1
    # holds 5 (too few for a model of its own: it shares stretch 2's)
    counts, prompts = (100, 5, 100, 100), (100, 200, 300, 400)
    times = np.concatenate(
        [k * SEGMENT_S + np.linspace(0, SEGMENT_S, c, endpoint=False) for k, c in enumerate(counts)]
    )
    prompt = np.repeat(prompts, counts).astype(np.int64)
    table = TraceTable(prompt, np.full(len(prompt), 10, np.int64), times, "synthetic")
    src = tmp_path / "t.csv"
    src.write_text("x")
    seg = build_document(table, src)["lengths_by_segment"]
    assert seg["index"] == [0, 1, 1, 2]
    models = tuple(LengthModel.from_json(m) for m in seg["models"])
    trace = EmbeddedTrace("t", "t.csv", 1, 0, models[0], None, {}, SEGMENT_S, models,
                          tuple(seg["index"]))  # fmt: skip
    mid = (np.arange(4) + 0.5) * SEGMENT_S
    medians = [np.median(models[i].sample(np.random.default_rng(0), 200)[0])
               for i in trace.segment_of(mid)]  # fmt: skip
    assert medians[0] == 100 and medians[2] == 300 and medians[3] == 400
