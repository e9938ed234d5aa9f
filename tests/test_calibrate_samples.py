"""Resumable sample store, grids and GPU-name mapping (CPU only)."""

from __future__ import annotations

import pytest

from calibrate.gpu_names import gpu_key_from_device_name
from calibrate.grids import GRIDS, QUICK, STANDARD
from calibrate.samples import SampleStore, load_samples, sample_key


def _rec(key, t=1e-3):
    return {
        "key": key,
        "kind": "op",
        "phase": "prefill",
        "op": "qkv",
        "num_sms": 8,
        "time_s": t,
        "split": "train",
    }


def test_store_resumes_and_skips_done(tmp_path):
    path = tmp_path / "samples.jsonl"
    st = SampleStore(path, resume=True)
    st.add(_rec("a"))
    st.add(_rec("b"))
    st.mark_pending("c")  # the run "dies" inside c (e.g. a watchdog exit)
    st.close()
    with open(path, "a") as f:
        f.write('{"key": "d", "kind": "op"')  # a line cut off by the interruption
    st2 = SampleStore(path, resume=True)
    assert st2.done == {"a", "b", "c"}  # c is skipped on resume, not retried into a hang
    assert [r["key"] for r in st2.records] == ["a", "b"]
    st2.close()
    df = load_samples(path)
    assert sorted(df["key"]) == ["a", "b"]


def test_no_resume_starts_over(tmp_path):
    path = tmp_path / "samples.jsonl"
    st = SampleStore(path)
    st.add(_rec("a"))
    st.close()
    st = SampleStore(path, resume=False)
    assert st.done == set()
    st.close()


def test_store_rejects_incomplete_records(tmp_path):
    st = SampleStore(tmp_path / "s.jsonl")
    with pytest.raises(AssertionError):
        st.add({"key": "x"})
    st.close()


def test_load_samples_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_samples(tmp_path / "nope.jsonl")


def test_sample_key_is_stable():
    assert sample_key("op", "decode", "qkv", 16, ctx=512, batch=8) == sample_key(
        "op", "decode", "qkv", 16, batch=8, ctx=512
    )


def test_grids_on_green_granularity():
    for g in GRIDS.values():
        assert all(n % 8 == 0 or n == 132 for n in g.sms)
        if g.name == "mechanisms":  # libsmctrl's 2-SM steps that green contexts cannot make
            assert all(n % 2 == 0 and n % 8 != 0 for n in g.sms_heldout)
        else:
            assert all(n % 8 == 4 for n in g.sms_heldout)  # split remainders, never on the grid
        assert not set(g.prefill_tokens) & set(g.prefill_tokens_heldout)
        assert all(b * c <= g.decode_max_kv_tokens for b, c in g.decode_shapes())
    assert sum(QUICK.counts().values()) < sum(STANDARD.counts().values()) / 3


@pytest.mark.parametrize(
    "name,key",
    [
        ("NVIDIA H200", "h200"),
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H20", "h20"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("NVIDIA L40S", None),
    ],
)
def test_gpu_names(name, key):
    assert gpu_key_from_device_name(name) == key
