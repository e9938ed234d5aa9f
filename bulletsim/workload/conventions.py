"""Workload conventions: how a benchmark counts and filters prompts and outputs, by name.

How prompts are counted moves a capacity more than the policy does (ShareGPT: Llama-2 counts
without BOS vs Llama-3 counts with BOS vs a chat template on top), so every run names its
convention and prints it. A convention fixes:

- `tokenizer`: whose token counts (`llama2`, `llama3`); real per-request counts of both are
  read from the count tables beside the ShareGPT and Alpaca files
  (`*_first_turn_tokens.csv`, `alpaca_data_tokens.csv`, made with the real tokenizer files,
  see ../shared/traces/PROVENANCE.md section 7);
- `bos`: the BOS token counted in the prompt *and* the output, as SGLang bench_serving and
  vLLM benchmark_serving do (both measure lengths with the HF tokenizer, which prepends BOS
  to every text it encodes, the completion included);
- `chat_template_tokens`: tokens a chat template adds to every prompt beyond BOS;
- `sharegpt_filter`: `sglang` (drop < 2 tokens) or `vllm` (drop < 4, prompt > 1024, total >
  2048), applied to the counts as that tool sees them (template included, BOS added);
- `pairing`: `first-two` (messages 0 and 1, whoever spoke: vLLM/SGLang) or `role-aware`
  (only conversations that open human -> gpt);
- `long_arxiv`: the `arxiv` trace reads the long (prefill > 4K, POD-Attention) table: the
  Bullet paper's arXiv rates (0.5-0.9 req/s on one A100) fit long articles, not the 4K table.

Tokenizer, BOS and template apply to the text datasets (ShareGPT, Alpaca) only: the Azure
traces hold the production service's counts and the length tables (arXiv, Sarathi ShareGPT)
hold Llama-2 counts whose BOS handling is unknown; those are used as given, and a note says so.
"""

from __future__ import annotations

from dataclasses import dataclass

# Llama-3.1 Instruct's chat template for one user message, measured with the Llama-3
# tokenizer file (meta-llama/llama-models models/llama3/tokenizer.model, sha256 82e9d319...)
# and tiktoken: the system header with its default "Cutting Knowledge Date: December
# 2023 / Today Date: 26 Jul 2024" lines, the user header, <|eot_id|> and the assistant
# header add 35 tokens to the content, BOS included, for any content (the special tokens cut
# the content off from its neighbours). 34 beyond BOS.
LLAMA31_CHAT_TEMPLATE_TOKENS = 34


@dataclass(frozen=True, slots=True)
class Convention:
    name: str
    tokenizer: str  # "llama2" | "llama3"
    bos: bool
    chat_template_tokens: int
    sharegpt_filter: str  # "sglang" | "vllm" | "none"
    pairing: str  # "first-two" | "role-aware"
    long_arxiv: bool
    description: str

    def summary(self) -> str:
        """One line for run and sweep output."""
        parts = [
            f"{self.tokenizer} counts",
            "BOS counted" if self.bos else "no BOS",
            f"chat template +{self.chat_template_tokens}" if self.chat_template_tokens else
            "no chat template",
            f"{self.sharegpt_filter} filter",
            self.pairing,
        ]  # fmt: skip
        if self.long_arxiv:
            parts.append("arXiv = long (POD) table")
        return f"{self.name} ({', '.join(parts)})"


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            "sglang-llama3", "llama3", True, 0, "sglang", "first-two", False,
            "SGLang bench_serving with a Llama-3 tokenizer (the Bullet artifact's harness)",
        ),
        Convention(
            "sglang-llama3-chat", "llama3", True, LLAMA31_CHAT_TEMPLATE_TOKENS, "sglang",
            "first-two", False, "as sglang-llama3, with --apply-chat-template (Llama-3.1)",
        ),
        Convention(
            "vllm-llama3", "llama3", True, 0, "vllm", "first-two", False,
            "vLLM benchmark_serving's ShareGPT sampler with a Llama-3 tokenizer",
        ),
        Convention(
            "vllm-llama2", "llama2", True, 0, "vllm", "first-two", False,
            "vLLM benchmark_serving's ShareGPT sampler with a Llama-2 tokenizer",
        ),
        Convention(
            "llama2-nobos", "llama2", False, 0, "sglang", "first-two", False,
            "Llama-2 content counts, no BOS, SGLang filter (bulletsim before conventions)",
        ),
        Convention(
            "role-aware-llama3", "llama3", True, 0, "sglang", "role-aware", False,
            "only conversations that open human -> gpt, Llama-3 counts with BOS",
        ),
        Convention(
            "arxiv-long", "llama3", True, 0, "sglang", "first-two", True,
            "sglang-llama3, and arXiv from the long (> 4K prefill) table",
        ),
    )
}  # fmt: skip
CONVENTION_NAMES = ("auto", *CONVENTIONS)


def resolve_convention(name: str, model: str) -> tuple[Convention, str]:
    """The convention `name` stands for, and why; `auto` follows the simulated system.

    `auto`: the Bullet artifact drives SGLang with bench_serving, and a model is measured
    with its own tokenizer, so Llama-2 models get `vllm-llama2`'s counts with SGLang's filter
    and every other model `sglang-llama3` (for non-Llama models the nearest real counts held;
    the reason says so).
    """
    if name != "auto":
        try:
            return CONVENTIONS[name], "chosen"
        except KeyError:
            raise ValueError(
                f"convention: unknown {name!r}; valid: {', '.join(CONVENTION_NAMES)}"
            ) from None
    if model.startswith("llama-3"):
        return CONVENTIONS["sglang-llama3"], f"auto: {model} is served by SGLang in Bullet"
    if model.startswith("llama-2"):
        c = CONVENTIONS["vllm-llama2"]
        return Convention("sglang-llama2", "llama2", True, 0, "sglang", "first-two", False,
                          c.description), f"auto: {model}"  # fmt: skip
    return CONVENTIONS["sglang-llama3"], (
        f"auto: no token counts for {model}'s tokenizer; Llama-3 counts are the nearest held"
    )
