"""Each loader on each real file (row counts and statistics from PROVENANCE.md) and on
malformed input (one-line ValueErrors that name the file and the row)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from bulletsim.workload.alpaca import read_alpaca, read_alpaca_tokens
from bulletsim.workload.arrival_profile import gap_cv
from bulletsim.workload.azure import read_azure_csv
from bulletsim.workload.length_table import read_arrival_csv, read_length_table
from bulletsim.workload.sharegpt import read_sharegpt, read_sharegpt_tokens, sharegpt_keep


def test_azure_conv(shared_traces_dir):
    t = read_azure_csv(shared_traces_dir / "AzureLLMInferenceTrace_conv.csv")
    assert len(t) == 19_366
    assert (np.median(t.prompt_tokens), np.median(t.output_tokens)) == (1020, 129)
    assert t.arrival_s[0] == 0.0 and np.all(np.diff(t.arrival_s) > 0)
    assert t.arrival_s[-1] == pytest.approx(3501.721937, abs=1e-6)
    assert len(t) / t.arrival_s[-1] == pytest.approx(5.530, abs=1e-3)
    assert gap_cv(t.arrival_s) == pytest.approx(1.094, abs=1e-3)


def test_azure_code(shared_traces_dir):
    t = read_azure_csv(shared_traces_dir / "AzureLLMInferenceTrace_code.csv")
    assert len(t) == 8_819
    assert (np.median(t.prompt_tokens), np.median(t.output_tokens)) == (1469, 13)
    assert t.prompt_tokens.mean() == pytest.approx(2047.8, abs=0.05)
    assert t.arrival_s[-1] == pytest.approx(3435.9, abs=0.05)
    assert gap_cv(t.arrival_s) == pytest.approx(13.15, abs=0.005)


@pytest.mark.parametrize(
    "file, rows, medians, means",
    [
        ("sharegpt_8k_filtered_stats_llama2_tokenizer.csv", 30_731, (1730, 415), (2340.0, 438.7)),
        (
            "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
            28_257,
            (2730, 167),
            (2588.1, 291.4),
        ),
        (  # written as floats (7564.0): accepted because integral
            "arxiv_summarization_filtered_stats_llama2_tokenizer_pod.csv",
            2_895,
            (7958, 332),
            (10041.0, 471.4),
        ),
    ],
)
def test_length_tables(shared_traces_dir, file, rows, medians, means):
    t = read_length_table(shared_traces_dir / file)
    assert len(t) == rows and t.arrival_s is None
    assert (np.median(t.prompt_tokens), np.median(t.output_tokens)) == medians
    assert t.prompt_tokens.mean() == pytest.approx(means[0], abs=0.05)
    assert t.output_tokens.mean() == pytest.approx(means[1], abs=0.05)


def test_sharegpt_llama2_table_and_vllm_filter(shared_traces_dir):
    path = shared_traces_dir / "sharegpt_v3_random1000_first_turn_tokens.csv"
    t = read_sharegpt_tokens(path)
    assert len(t) == 991 and t.num_empty == 1  # 992 pairs, one with an empty text
    keep = sharegpt_keep(t.prompt_tokens, t.output_tokens, "vllm")
    assert keep.sum() == 883
    assert np.median(t.prompt_tokens[keep]) == 91 and np.median(t.output_tokens[keep]) == 167
    # Row by row, the same decisions as the file's own vLLM-filter column.
    df = pd.read_csv(path)
    full = sharegpt_keep(df.prompt_tokens_llama2, df.output_tokens_llama2, "vllm")
    assert np.array_equal(full, df.vllm_default_keep_llama2.to_numpy() == 1)
    assert sharegpt_keep(t.prompt_tokens, t.output_tokens, "sglang").sum() == 991


def test_sharegpt_json_prefers_llama2_table(shared_traces_dir):
    t = read_sharegpt(shared_traces_dir / "sharegpt_v3_random1000.json.gz")
    assert t.source.endswith("_first_turn_tokens.csv") and len(t) == 991


def test_sharegpt_json_approx_tokenizer(shared_traces_dir, tmp_path):
    # A symlink alone in a folder: no Llama-2 table beside it, so the text is tokenized.
    link = tmp_path / "sharegpt_v3_random1000.json.gz"
    link.symlink_to(shared_traces_dir / link.name)
    t = read_sharegpt(link, pairing="role-aware")
    # every conversation is kept or counted; 9 have no user turn at all (empty or
    # assistant-only), one has an empty text; the user's question and the assistant's answer
    assert len(t) + t.num_empty == 1000 and len(t) == 990
    assert "rejected 9 of 1000 conversations: 9 no user turn" in t.notes
    assert np.median(t.prompt_tokens) == pytest.approx(27, rel=0.1)
    assert np.median(t.output_tokens) == pytest.approx(331, rel=0.1)
    # vLLM/SGLang's first two messages: gpt -> human pairs make prompts long
    t = read_sharegpt(link, pairing="first-two")
    assert len(t) == 991 and t.num_empty == 9
    assert "1 empty reply, 8 fewer than 2 messages" in t.notes[-1]
    assert np.median(t.prompt_tokens) == pytest.approx(127, rel=0.1)
    assert np.median(t.output_tokens) == pytest.approx(156, rel=0.1)


def test_alpaca_tokens(shared_traces_dir):
    t = read_alpaca_tokens(shared_traces_dir / "alpaca_data_tokens.csv")
    assert len(t) == 52_002 - 28 and t.num_empty == 28  # 28 empty outputs
    assert np.median(t.prompt_tokens) == 16 and np.median(t.output_tokens) == 47
    assert t.prompt_tokens.mean() == pytest.approx(20.1, abs=0.05)


def test_alpaca_json_approx(shared_traces_dir, tmp_path):
    link = tmp_path / "alpaca_data.json.gz"
    link.symlink_to(shared_traces_dir / link.name)
    t = read_alpaca(link)
    assert len(t) == 52_002 - 28
    assert t.prompt_tokens.mean() == pytest.approx(20.1, rel=0.05)
    assert t.output_tokens.mean() == pytest.approx(64.5, rel=0.05)


def test_alpaca_prompt_convention(tmp_path):
    path = tmp_path / "a.json"
    records = [
        {"instruction": "Add", "input": "2 and 3", "output": "5"},
        {"instruction": "Say hi", "input": "", "output": "hi"},
    ]
    path.write_text(json.dumps(records))
    t = read_alpaca(path)
    assert t.prompt_tokens.tolist() == [5, 2]  # "Add" "2" "and" "3" (digits weigh more)
    assert t.output_tokens.tolist() == [1, 1]


def test_arrival_csv_sorts_and_accepts_vidur_names(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n5.0,10,2\n3.0,20,4\n")
    t = read_arrival_csv(path)
    assert t.arrival_s.tolist() == [0.0, 2.0] and t.prompt_tokens.tolist() == [20, 10]
    assert "sorted" in t.notes[1] and "span 2.000 s, 2 requests" in t.notes[0]
    path.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0.5,7,3\n")
    assert read_arrival_csv(path).prompt_tokens.tolist() == [7]


LENGTH_HEADER = "num_prefill_tokens,num_decode_tokens\n"


@pytest.mark.parametrize(
    "content, expected",
    [
        ("", "empty file; expected num_prefill_tokens,num_decode_tokens"),
        (LENGTH_HEADER, "no data rows"),
        ("num_prefill_tokens,x\n1,2\n", "missing column(s) num_decode_tokens"),
        (LENGTH_HEADER + "10,5\n10,abc\n", "row 2 (line 3) column num_decode_tokens = 'abc'"),
        (LENGTH_HEADER + "10,5\n-3,5\n", "row 2 (line 3) column num_prefill_tokens = -3"),
        (LENGTH_HEADER + "0,5\n", "expected an integer token count >= 1"),
        (LENGTH_HEADER + "1.5,5\n", "column num_prefill_tokens = 1.5"),
        (LENGTH_HEADER + "10,\n", "row 1 (line 2) column num_decode_tokens = <empty>; expected a"),
    ],
)
def test_malformed_length_table(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError) as err:
        read_length_table(path)
    assert expected in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_azure_timestamp(tmp_path):
    path = tmp_path / "azure.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,3,4\nyes,3,4")
    with pytest.raises(ValueError, match=r"row 2 \(line 3\) column TIMESTAMP = 'yes'; expected"):
        read_azure_csv(path)


@pytest.mark.parametrize(
    "content, expected",
    [
        ("{not json", "line 1: not JSON"),  # JSON lines unless it starts with "["
        ("[{not json", "not valid JSON"),
        ('{"a": 1}', "line 1 has no 'conversations' list"),
        ('[{"id": "x"}]', "entry 0 has no 'conversations' list"),
        ('[{"conversations": [{"value": "hi"}, {"from": "gpt"}]}]', "entry 0: message 0 has no"),
        ('[{"conversations": [{"from": "robot", "value": "hi"}]}]', "role 'robot'; valid: human"),
    ],
)
def test_malformed_sharegpt(tmp_path, content, expected):
    path = tmp_path / "s.json.gz"
    with gzip.open(path, "wt") as f:
        f.write(content)
    with pytest.raises(ValueError, match=expected) as err:
        read_sharegpt(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
