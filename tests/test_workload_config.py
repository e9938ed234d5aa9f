"""WorkloadConfig validation: one-line ValueErrors that name the field and the valid choices."""

from __future__ import annotations

import numpy as np
import pytest

from bulletsim.workload import TRACE_NAMES, WorkloadConfig, load_workload


def test_defaults_are_valid_and_touch_no_disk():
    WorkloadConfig().validate()
    # A config naming files that do not exist is still a valid value; loading finds out.
    WorkloadConfig(trace="csv", trace_file="/nowhere/x.csv", traces_dir="/nowhere").validate()
    assert set(TRACE_NAMES) >= {"splitwise", "splitwise-conv", "splitwise-code", "sharegpt"}


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"trace": "nope"}, r"trace: unknown 'nope'; valid: splitwise, splitwise-conv, "),
        ({"arrival": "uniform"}, r"arrival: unknown 'uniform'; valid: trace, poisson, gamma"),
        ({"rate": 0.0, "arrival": "poisson"}, r"rate: must be > 0"),
        ({"rate": -2.0}, r"rate: must be > 0"),
        ({"cv": 0.0, "arrival": "gamma"}, r"cv: must be > 0"),
        ({"time_scale": 0.0}, r"time_scale: must be > 0"),
        ({"num_requests": 0}, r"num_requests: must be >= 1"),
        ({"duration_s": -1.0}, r"duration_s: must be > 0"),
        ({"max_total_tokens": 1}, r"max_total_tokens: must be >= 2"),
        ({"over_length": "cut"}, r"over_length: unknown 'cut'; valid: drop, clip, error"),
        ({"sharegpt_filter": "hf"}, r"sharegpt_filter: unknown 'hf'; valid: vllm, sglang, none"),
        ({"tokenizer": "gpt2"}, r"tokenizer: unknown 'gpt2'; valid: approx, sentencepiece:"),
        ({"tokenizer": "tiktoken:"}, r"tokenizer: unknown"),
        ({"trace": "csv"}, r"trace_file: trace 'csv' needs trace_file"),
        ({"trace": "sharegpt", "arrival": "trace"}, r"arrival: trace 'sharegpt' has no timest"),
        ({"arrival": "trace", "rate": 3.0}, r"rate: applies to poisson/gamma"),
        ({"arrival": "poisson", "time_scale": 2.0}, r"time_scale: applies only to arrival="),
    ],
)
def test_bad_values(kwargs, expected):
    with pytest.raises(ValueError, match=expected) as err:
        WorkloadConfig(**kwargs).validate()
    assert "\n" not in str(err.value)


def test_load_workload_validates():
    with pytest.raises(ValueError, match="rate: must be > 0"):
        load_workload(WorkloadConfig(trace="sharegpt", rate=-1.0), np.random.default_rng(0))


def test_resolved_arrival():
    assert WorkloadConfig().resolved_arrival == "trace"
    assert WorkloadConfig(rate=4.0).resolved_arrival == "poisson"  # a rate asks for synthetic
    assert WorkloadConfig(trace="alpaca").resolved_arrival == "poisson"
    assert WorkloadConfig(arrival="gamma").resolved_arrival == "gamma"
