"""Alpaca loader: `{instruction, input, output}` records (JSON or JSON lines) or a token table.

Prompt convention (as in the vLLM paper's Alpaca workload): `instruction + "\\n" + input`, or
the instruction alone when the input is empty; no Stanford training template (that would
add about 40 Llama-2 tokens per prompt). The LLaMA-Factory extension's optional `system`
and `history` come first (see `alpaca_texts`).
"""

from __future__ import annotations

from pathlib import Path

from bulletsim.workload.csv_columns import read_csv, token_counts
from bulletsim.workload.table import TraceTable, drop_empty
from bulletsim.workload.text_records import read_records
from bulletsim.workload.tokenizer import make_counter, tokenizer_label

FAMILIES = ("llama2", "llama3")


def sidecar_path(json_path: Path) -> Path:
    """`alpaca_data.json[.gz]` -> `alpaca_data_tokens.csv` in the same folder."""
    stem = json_path.name.removesuffix(".gz").removesuffix(".json")
    return json_path.with_name(stem + "_tokens.csv")


def read_alpaca_tokens(path: Path, family: str = "llama2") -> TraceTable:
    """`alpaca_data_tokens.csv`: counts per record of the `family` tokenizer (llama2, llama3);
    28 outputs are empty and dropped."""
    if family not in FAMILIES:
        raise ValueError(f"tokenizer family: unknown {family!r}; valid: {', '.join(FAMILIES)}")
    cols = (f"prompt_tokens_{family}", f"output_tokens_{family}")
    df = read_csv(path, cols)
    prompt = token_counts(df, cols[0], path, minimum=0)
    output = token_counts(df, cols[1], path, minimum=0)
    name = {"llama2": "Llama-2", "llama3": "Llama-3"}[family]
    return drop_empty(prompt, output, str(path), (f"{name} token counts",))


def alpaca_texts(record: object, where: str, path: Path) -> tuple[str, str] | str:
    """(prompt, output) of one record, or why it is rejected.

    Prompt = the non-empty parts of `system`, every `history` [instruction, response] pair,
    `instruction` and `input`, joined by newlines (no training template). `input`, `system`
    and `history` are optional; a null or non-string text rejects the record.
    """
    if not isinstance(record, dict) or "instruction" not in record or "output" not in record:
        raise ValueError(f"{path}: {where}: expected an object with instruction and output")
    history = record.get("history") or []
    if not isinstance(history, list) or not all(
        isinstance(h, list | tuple) and len(h) == 2 for h in history
    ):
        raise ValueError(f"{path}: {where}: history must be a list of [instruction, response]")
    parts = [record.get("system") or "", *(t for pair in history for t in pair),
             record["instruction"], record.get("input") or ""]  # fmt: skip
    if not all(isinstance(p, str) for p in (*parts, record["output"])):
        return "null or non-string text"
    return "\n".join(p for p in parts if p), record["output"]


def read_alpaca(path: Path, tokenizer: str = "approx", family: str = "llama2") -> TraceTable:
    """Token counts of every Alpaca record (JSON array or JSON lines); a `.csv` path is read
    as the token table. With the `approx` tokenizer the real count table next to the JSON
    is preferred (its `family` columns: llama2, llama3). Rejected records (see
    `alpaca_texts`) and empty outputs are counted.
    """
    if path.suffix == ".csv":
        return read_alpaca_tokens(path, family)
    sidecar = sidecar_path(path)
    if tokenizer == "approx" and sidecar.is_file():
        return read_alpaca_tokens(sidecar, family).standing_in_for_text(sidecar.name)
    records = read_records(path)
    if not records:
        raise ValueError(f"{path}: expected a non-empty JSON array or JSON lines of records")
    prompts: list[str] = []
    outputs: list[str] = []
    num_rejected = 0
    for where, record in records:
        got = alpaca_texts(record, where, path)
        if isinstance(got, str):
            num_rejected += 1
            continue
        prompts.append(got[0])
        outputs.append(got[1])
    if not prompts:
        raise ValueError(f"{path}: every record has a null or non-string text")
    notes = [f"tokenizer {tokenizer_label(tokenizer)}"]
    if num_rejected:
        notes.append(f"rejected {num_rejected} record(s) with a null or non-string text")
    count = make_counter(tokenizer)
    table = drop_empty(count(prompts), count(outputs), str(path), tuple(notes))
    return TraceTable(table.prompt_tokens, table.output_tokens, None, table.source, table.notes,
                      table.num_empty + num_rejected)  # fmt: skip
