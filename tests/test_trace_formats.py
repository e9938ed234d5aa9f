"""Every trace format on a small synthetic fixture (tests/fixtures/traces, no real user text):
detected, read with the right counts, lengths and span, and malformed variants rejected with
one-line errors naming the row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.workload import WorkloadConfig, load_workload
from bulletsim.workload.formats import detect_format
from bulletsim.workload.tokenizer import make_counter

FIX = Path(__file__).parent / "fixtures" / "traces"
runner = CliRunner()
count = make_counter("approx")

# fixture, detected format, prompts and outputs in time order, span (s) or None, dropped
TIMED = [
    ("azure_2023.csv", "azure", [100, 200, 300], [10, 20, 30], 2.0, 0),
    ("azure_2024.csv", "azure", [120, 80, 60], [12, 8, 6], 4.0, 1),  # 0 generated: dropped
    ("burstgpt.csv", "burstgpt", [100, 50, 40, 70], [20, 10, 8, 14], 7.0, 1),  # 1 failed
    ("mooncake.jsonl", "mooncake", [600, 800, 300], [30, 40, 10], 3.0, 1),  # ms -> s
    ("bailian.jsonl", "bailian", [520, 700, 90], [130, 60, 45], 2.25, 0),
    ("splitwise_sim.csv", "splitwise-sim", [512, 1024, 256], [64, 32, 128], 1.75, 0),
    ("vidur.csv", "vidur", [400, 500, 600], [40, 50, 60], 2.0, 0),
]


def _load(name: str, **kw):
    cfg = WorkloadConfig(trace="csv", trace_file=str(FIX / name), **kw)
    return load_workload(cfg, np.random.default_rng(0))


@pytest.mark.parametrize(("name", "fmt", "prompts", "outputs", "span", "dropped"), TIMED)
def test_timestamped_formats(name, fmt, prompts, outputs, span, dropped):
    assert detect_format(FIX / name) == fmt
    wl = _load(name)
    assert [r.prompt_tokens for r in wl.requests] == prompts
    assert [r.output_tokens for r in wl.requests] == outputs
    assert wl.requests[-1].arrival_s - wl.requests[0].arrival_s == pytest.approx(span)
    assert wl.num_dropped == dropped
    assert any(f"span {span:.3f} s, {len(prompts)} requests" in n for n in wl.notes)


def test_azure_2024_zone_and_fraction_digits():
    wl = _load("azure_2024.csv")
    # 00:00:00.009930, (00:00:00.5 dropped), 00:00:01.25, 00:00:04.00993
    assert [r.arrival_s for r in wl.requests] == pytest.approx([0.0, 1.24007, 4.0])


def test_burstgpt_model_column_and_same_second_requests():
    wl = _load("burstgpt.csv", trace_model="ChatGPT")
    assert [r.prompt_tokens for r in wl.requests] == [100, 40]  # the 0-response row dropped
    assert [r.arrival_s for r in wl.requests] == [0.0, 2.0]
    assert [r.arrival_s for r in _load("burstgpt.csv").requests][:2] == [0.0, 0.0]
    with pytest.raises(ValueError, match="no model 'gpt4'; valid: ChatGPT, GPT-4"):
        _load("burstgpt.csv", trace_model="gpt4")


def test_timestamp_unit_is_declared_and_can_be_overridden():
    wl = _load("mooncake.jsonl", timestamp_unit="s")  # wrong on purpose: 1000x the span
    assert wl.requests[-1].arrival_s == 3000.0
    assert any("timestamps in s (given with timestamp_unit): span 3000.000 s" in n
               for n in wl.notes)  # fmt: skip
    assert any("timestamps in ms (declared by the mooncake format)" in n
               for n in _load("mooncake.jsonl").notes)  # fmt: skip
    with pytest.raises(ValueError, match="timestamp_unit: unknown 'sec'; valid: s, ms, us, ns"):
        _load("mooncake.jsonl", timestamp_unit="sec")


def test_prefix_hash_ids_are_kept():
    from bulletsim.workload.catalog import trace_info
    from bulletsim.workload.readers import read_trace_file

    t = read_trace_file(trace_info("csv"), FIX / "mooncake.jsonl")
    assert t.prefix_hash_ids == ((0, 1), (0, 1, 3), (4,))


def test_trace_format_flag_overrides_detection():
    wl = _load("vidur.csv", trace_format="csv")  # the plain reader accepts vidur's names too
    assert len(wl.requests) == 3
    with pytest.raises(ValueError, match=r"missing column\(s\) TIMESTAMP, ContextTokens"):
        _load("vidur.csv", trace_format="azure")
    with pytest.raises(ValueError, match="trace_format: unknown 'parquet'; valid: auto, azure"):
        _load("vidur.csv", trace_format="parquet")


# fixture, prompts and outputs as texts (the rules' expected result), rows dropped
TEXT = [
    ("sharegpt.json", [
        ("What is a fixture?", "A small made-up input for a test."),
        ("You answer in one line.\nWhy test?", "To catch faults early."),  # system prepended
        ("Hello, how can I help?", "Tell me a number."),  # first-two: gpt -> human kept
    ], 4),  # null value, empty reply, no reply, non-string reply
    ("sharegpt.jsonl", [("Pick a letter.", "Q."), ("Be terse.\nPick a digit.", "Four.")], 1),
    ("alpaca.json", [
        ("Add the numbers.\n2 and 3", "5"),
        ("Name a shape.", "A square."),
        ("You complete lists.\nContinue the list.\nred, green", "blue"),  # system first
        ("Continue the list.\nblue\nAnd the next one?", "yellow"),  # history first
    ], 2),  # empty output, null instruction
    ("alpaca.jsonl", [("Reverse the word.\nstop", "pots"), ("Give a synonym.\nfast", "quick")], 0),
    ("custom.jsonl", None, 1),  # null prompt
]  # fmt: skip


@pytest.mark.parametrize(("name", "texts", "dropped"), TEXT)
def test_text_formats_role_aware(name, texts, dropped):
    # content counts as the reader makes them: no BOS, no template (see conventions.py)
    wl = _load(name, arrival="poisson", rate=1.0, convention="llama2-nobos")
    got = sorted((r.prompt_tokens, r.output_tokens) for r in wl.requests)
    if texts is None:  # custom: output lengths are given per line
        prompts = [
            "Name three colours of the synthetic fixture.",
            "Count from one to five in words.",
            "Say hello to the test suite, briefly.",
        ]
        want = sorted(zip(count(prompts).tolist(), [16, 8, 4], strict=True))  # fmt: skip
    else:
        p, o = zip(*texts, strict=True)
        want = sorted(zip(count(list(p)).tolist(), count(list(o)).tolist(), strict=True))
    assert got == want
    assert wl.num_dropped == dropped


@pytest.mark.parametrize("pairing", ["role-aware", "first-two"])
def test_sharegpt_pairings_and_the_system_rule(pairing):
    from bulletsim.workload.sharegpt import read_sharegpt

    t = read_sharegpt(FIX / "sharegpt.json", pairing=pairing)
    third = (
        ("Tell me a number.", "Seven.")
        if pairing == "role-aware"
        else ("Hello, how can I help?", "Tell me a number.")
    )  # positional: gpt -> human
    texts = [
        ("What is a fixture?", "A small made-up input for a test."),
        ("You answer in one line.\nWhy test?", "To catch faults early."),
        third,
    ]
    p, o = zip(*texts, strict=True)
    assert t.prompt_tokens.tolist() == count(list(p)).tolist()
    assert t.output_tokens.tolist() == count(list(o)).tolist()
    assert t.num_empty == 4  # null value, empty reply, no reply, non-string reply


def test_text_format_without_timestamps_needs_a_rate():
    with pytest.raises(ValueError, match="has no timestamps; give arrival=poisson"):
        _load("sharegpt.json")


MALFORMED = [
    ("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00+00:00,5,1\n"
     "10/05/2024,5,1\n", "azure", r"row 2 \(line 3\) column TIMESTAMP = '10/05/2024'"),
    ("b.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
     "1,ChatGPT,x,3,3,API log\n", "burstgpt", r"row 1 \(line 2\) column Request tokens = 'x'"),
    ("m.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": 1}\n'
     '{"timestamp": -3, "input_length": 5, "output_length": 1}\n', "mooncake",
     "line 2: timestamp = -3; expected a number >= 0"),
    ("m2.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": 1}\n{oops\n', "mooncake",
     "line 2: not JSON"),
    ("q.jsonl", '{"chat_id": 1, "timestamp": 0, "input_length": 2.5, "output_length": 1}\n',
     "bailian", "line 1: input_length = 2.5; expected an integer token count"),
    ("s.csv", "request_id,request_type,application_id,arrival_timestamp,batch_size,prompt_size,"
     "token_size\n0,2,0,0.0,1,0,5\n", "splitwise-sim", r"row 1 \(line 2\) column prompt_size = 0"),
    ("v.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0.1,4,\n", "vidur",
     r"row 1 \(line 2\) column num_decode_tokens = <empty>"),
    ("c.jsonl", '{"prompt": "hi", "output_tokens": 4}\n{"text": "hi"}\n', "custom",
     "line 2: no 'prompt' key; keys are text"),
    ("c2.jsonl", '{"prompt": "hi", "output_tokens": 0}\n', "custom",
     "line 1: output_tokens = 0; expected an integer >= 1"),
    ("g.json", '[{"conversations": [{"from": "human", "value": "a"}, {"value": "b"}]}]',
     "sharegpt", "entry 0: message 1 has no 'from'"),
    ("g.jsonl", '{"conversations": "hello"}\n', "sharegpt", "line 1 has no 'conversations' list"),
    ("a.json", '[{"instruction": "a", "output": "b"}, {"input": "x"}]', "alpaca",
     "entry 1: expected an object with instruction and output"),
    ("a.jsonl", '{"instruction": "a", "output": "b", "history": ["q", "r"]}\n', "alpaca",
     r"line 1: history must be a list of \[instruction, response\]"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "fmt", "message"), MALFORMED)
def test_malformed_variants_are_one_line_errors(tmp_path, name, text, fmt, message):
    path = tmp_path / name
    path.write_text(text)
    timed = fmt in {t[1] for t in TIMED}
    rate = {} if timed else {"arrival": "poisson", "rate": 1.0}
    cfg = WorkloadConfig(trace="csv", trace_file=str(path), trace_format=fmt, **rate)
    with pytest.raises(ValueError, match=message):
        load_workload(cfg, np.random.default_rng(0))
    assert detect_format(path) == fmt  # detection agrees with the format each file imitates
    out = runner.invoke(app, ["run", "--trace", "csv", "--trace-file", str(path), "--arrival",
                              "poisson", "--rate", "1", "--no-write", "-q"])  # fmt: skip
    assert out.exit_code == 2 and out.output.count("\n") == 1, out.output
    assert out.output.startswith("error: ")


def test_undetectable_file(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("when,how_many\n1,2\n")
    with pytest.raises(ValueError, match="cannot tell its trace format .*give --trace-format"):
        _load(str(path))  # an absolute path: FIX / path is path


@pytest.mark.parametrize("name", [t[0] for t in TIMED] + [t[0] for t in TEXT])
def test_cli_runs_every_fixture(name):
    args = ["run", "--trace", "csv", "--trace-file", str(FIX / name), "--no-write", "-q",
            "--gpu", "h200", "--latency", "roofline"]  # fmt: skip
    if name.split(".")[0] in ("sharegpt", "alpaca", "custom"):
        args += ["--arrival", "poisson", "--rate", "2"]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    timed = name in {t[0] for t in TIMED}
    assert ("span" in out.output) == timed


def test_a_dropped_row_is_counted_once_in_the_run_output(tmp_path):
    out = CliRunner().invoke(
        app, ["run", "--trace", "csv", "--trace-file", str(FIX / "burstgpt.csv"),
              "--gpu", "h200", "--no-write", "-q"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "dropped 1 failed request(s)" in out.output
    # the total names itself as the total, so the failed row is not read as a second drop
    assert "1 requests dropped in all as empty, failed or filtered out" in out.output
