"""The named traces: what format each is, which files hold it, where to get them.

Every path, commit and sha256 below comes from ../shared/traces/PROVENANCE.md. Files are
pinned to a commit so that a download is byte-identical to the file the embedded model was
computed from (the sha256 check enforces it).
"""

from __future__ import annotations

from dataclasses import dataclass

_GH = "https://raw.githubusercontent.com"
_AZURE = f"{_GH}/Azure/AzurePublicDataset/b469a113cedca53ddc3bdea71a143dc4b7d8700c/data"
_SARATHI = f"{_GH}/microsoft/sarathi-serve/72339db5b120614033b317880ad3a05a5e4c9415"
_VIDUR = f"{_GH}/microsoft/vidur/7d47513363ec447a741ac5e47241580b47724fbf"
_VATTN = f"{_GH}/microsoft/vattention/ef3fff25dbe4e10f5897da8648718c53df6a20ea"
_ALPACA = f"{_GH}/tatsu-lab/stanford_alpaca/761dc5bfbdeeffa89b8bff5d038781a4055f796a"
_SHAREGPT_HF = (
    "https://huggingface.co/datasets/anon8231489123/ShareGPT_Vicuna_unfiltered/resolve/main"
)


@dataclass(frozen=True, slots=True)
class TraceFile:
    """One file that can hold a trace, and where to download it (None: no public copy)."""

    name: str
    url: str | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """A named trace. `files` are tried in order; the first one present is loaded."""

    name: str
    format: str  # "azure", "sharegpt", "length-table", "alpaca", "csv"
    description: str
    files: tuple[TraceFile, ...]
    has_timestamps: bool
    default_rate: float | None  # req/s for poisson/gamma when the trace has no timestamps
    embedded: str | None  # the embedded model's JSON under bulletsim/workload/data/
    licence: str


_CONV = TraceFile(
    "AzureLLMInferenceTrace_conv.csv",
    f"{_AZURE}/AzureLLMInferenceTrace_conv.csv",
    "2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8",
)
_CODE = TraceFile(
    "AzureLLMInferenceTrace_code.csv",
    f"{_AZURE}/AzureLLMInferenceTrace_code.csv",
    "54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6",
)
_AZURE_LICENCE = "CC BY 4.0; cite Patel et al., Splitwise, ISCA 2024"
_SHAREGPT_LICENCE = "ShareGPT content, provenance unclear (HF card says apache-2.0)"

# Default rates for traces without timestamps are rough moderate loads for an 8B model on
# one A100/H100-class GPU, chosen so that a default run neither idles nor explodes. Sweep
# --rate for capacity numbers; these are not measured capacities.
TRACES: dict[str, TraceInfo] = {
    t.name: t
    for t in (
        TraceInfo(
            "splitwise",
            "azure",
            "Azure LLM inference trace 2023, conversation (alias of splitwise-conv)",
            (_CONV,),
            True,
            None,
            "splitwise-conv.json",
            _AZURE_LICENCE,
        ),
        TraceInfo(
            "splitwise-conv",
            "azure",
            "Azure LLM inference trace 2023, conversation, 1 h, 19,366 requests",
            (_CONV,),
            True,
            None,
            "splitwise-conv.json",
            _AZURE_LICENCE,
        ),
        TraceInfo(
            "splitwise-code",
            "azure",
            "Azure LLM inference trace 2023, code, 1 h, 8,819 requests, very bursty",
            (_CODE,),
            True,
            None,
            "splitwise-code.json",
            _AZURE_LICENCE,
        ),
        TraceInfo(
            "sharegpt",
            "sharegpt",
            "ShareGPT V3 first turn (vLLM/SGLang bench convention), Llama-2 counts",
            (
                TraceFile(
                    "ShareGPT_V3_unfiltered_cleaned_split.json",
                    f"{_SHAREGPT_HF}/ShareGPT_V3_unfiltered_cleaned_split.json",
                ),
                TraceFile("sharegpt_v3_random1000.json.gz"),
                TraceFile("sharegpt_v3_random1000_first_turn_tokens.csv"),
            ),
            False,
            8.0,
            "sharegpt.json",
            _SHAREGPT_LICENCE,
        ),
        TraceInfo(
            "sharegpt-sarathi",
            "length-table",
            "Sarathi-Serve ShareGPT table: multi-turn context, total <= 8k, Llama-2",
            (
                TraceFile(
                    "sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
                    f"{_SARATHI}/data/processed_traces/"
                    "sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
                    "6d6c296302a853e2669a674a96f269283e60c57e60363bd450588a1066919f9f",
                ),
            ),
            False,
            1.5,
            "sharegpt-sarathi.json",
            _SHAREGPT_LICENCE + "; table from microsoft/sarathi-serve (Apache-2.0)",
        ),
        TraceInfo(
            "alpaca",
            "alpaca",
            "Stanford Alpaca, prompt = instruction + newline + input (no template)",
            (
                TraceFile(
                    "alpaca_data.json",
                    f"{_ALPACA}/alpaca_data.json",
                    "2eddafc6b977608d778aaab8dfc7e50e547b3af9826dfb9e909d9fc362e4a419",
                ),
                TraceFile("alpaca_data.json.gz"),
                TraceFile("alpaca_data_tokens.csv"),
            ),
            False,
            20.0,
            "alpaca.json",
            "CC BY-NC 4.0 (non-commercial research only); Taori et al. 2023",
        ),
        TraceInfo(
            "arxiv",
            "length-table",
            "arXiv-Summarization-4K table from vidur (total <= 4,096), Llama-2",
            (
                TraceFile(
                    "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
                    f"{_VIDUR}/data/processed_traces/"
                    "arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
                    "9d3580538d915ca75e4aaaa54590b42dbb17abc6d74c8913310cf07c232adcdc",
                ),
            ),
            False,
            2.0,
            "arxiv.json",
            "counts only; vidur (MIT); arXiv-Summarization, Cohan et al. NAACL 2018",
        ),
        TraceInfo(
            "arxiv-long",
            "length-table",
            "arXiv-Summarization prefill > 4K (POD-Attention artifact), Llama-2",
            (
                TraceFile(
                    "arxiv_summarization_filtered_stats_llama2_tokenizer_pod.csv",
                    f"{_VATTN}/pod_attn/scripts/traces/"
                    "arxiv_summarization_filtered_stats_llama2_tokenizer_pod.csv",
                    "ad25b3049557f99f29033a27d84e65b91f10154768eabb1b926e698677ba03a2",
                ),
            ),
            False,
            0.4,
            "arxiv-long.json",
            "counts only; vattention (MIT); arXiv-Summarization, Cohan et al. NAACL 2018",
        ),
        TraceInfo(
            "csv",
            "csv",
            "your own file, format detected or --trace-format (traces/README.md); needs trace_file",
            (),
            True,
            None,
            None,
            "yours",
        ),
    )
}

# Synthetic workloads (no file): lengths as benchmark clients draw them (synthetic.py).
for _name, _what in (
    ("random", "random lengths around input_len/output_len with range_ratio (vLLM/SGLang)"),
    ("fixed", "every request exactly input_len prompt and output_len output tokens"),
):
    TRACES[_name] = TraceInfo(_name, "synthetic", _what, (), False, None, None, "synthetic")

TRACE_NAMES: tuple[str, ...] = tuple(TRACES)


def trace_info(name: str) -> TraceInfo:
    """The catalog entry for `name`; ValueError listing the valid names otherwise."""
    try:
        return TRACES[name]
    except KeyError:
        raise ValueError(f"unknown trace {name!r}; valid: {', '.join(TRACE_NAMES)}") from None
