"""Stanford Alpaca loader: the JSON of `{instruction, input, output}` or its token table.

Prompt convention (as in the vLLM paper's Alpaca workload): `instruction + "\\n" + input`, or
the instruction alone when the input is empty; no Stanford training template (that would
add about 40 Llama-2 tokens per prompt).
"""

from __future__ import annotations

from pathlib import Path

from bulletsim.workload.csv_columns import read_csv, token_counts
from bulletsim.workload.sharegpt import read_json
from bulletsim.workload.table import TraceTable, drop_empty
from bulletsim.workload.tokenizer import make_counter

TOKENS_COLUMNS = ("prompt_tokens_llama2", "output_tokens_llama2")


def sidecar_path(json_path: Path) -> Path:
    """`alpaca_data.json[.gz]` -> `alpaca_data_tokens.csv` in the same folder."""
    stem = json_path.name.removesuffix(".gz").removesuffix(".json")
    return json_path.with_name(stem + "_tokens.csv")


def read_alpaca_tokens(path: Path) -> TraceTable:
    """`alpaca_data_tokens.csv`: Llama-2 counts per record (28 outputs are empty: dropped)."""
    df = read_csv(path, TOKENS_COLUMNS)
    prompt = token_counts(df, "prompt_tokens_llama2", path, minimum=0)
    output = token_counts(df, "output_tokens_llama2", path, minimum=0)
    return drop_empty(prompt, output, str(path), ("Llama-2 token counts",))


def read_alpaca(path: Path, tokenizer: str = "approx") -> TraceTable:
    """Token counts of every Alpaca record; a `.csv` path is read as the token table.

    With the `approx` tokenizer the real Llama-2 table next to the JSON is preferred.
    """
    if path.suffix == ".csv":
        return read_alpaca_tokens(path)
    sidecar = sidecar_path(path)
    if tokenizer == "approx" and sidecar.is_file():
        return read_alpaca_tokens(sidecar).standing_in_for_text(sidecar.name)
    records = read_json(path)
    if not isinstance(records, list) or not records:
        raise ValueError(f"{path}: expected a non-empty JSON array of Alpaca records")
    prompts: list[str] = []
    outputs: list[str] = []
    for i, record in enumerate(records):
        try:
            instruction, given, output = record["instruction"], record["input"], record["output"]
        except (KeyError, TypeError):
            raise ValueError(
                f"{path}: record {i}: expected an object with instruction, input, output"
            ) from None
        prompts.append(f"{instruction}\n{given}" if given else str(instruction))
        outputs.append(str(output))
    count = make_counter(tokenizer)
    return drop_empty(count(prompts), count(outputs), str(path), (f"tokenizer {tokenizer}",))
