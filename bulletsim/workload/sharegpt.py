"""ShareGPT loader and the vLLM / SGLang benchmark filters.

Role-aware (see `first_request`): the prompt is the first user turn (after any system turns,
which are prepended) and the output the assistant reply to it. vLLM's `benchmark_serving`
and SGLang's `bench_serving` take messages 0 and 1 whoever spoke them (about a third of V3
first pairs are gpt -> human); this loader does not. Token counts in the workload exclude
BOS; the filters add it back because vLLM and SGLang count with the HF tokenizer's BOS.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bulletsim.workload.csv_columns import read_csv, token_counts
from bulletsim.workload.table import TraceTable, drop_empty
from bulletsim.workload.text_records import open_text, read_records
from bulletsim.workload.tokenizer import make_counter, tokenizer_label

SIDECAR_SUFFIX = "_first_turn_tokens.csv"
FAMILIES = ("llama2", "llama3")  # the count columns a first-turn table holds
PAIRINGS = ("first-two", "role-aware")


def read_json(path: Path) -> object:  # kept for callers of the old name
    """Parsed JSON of a plain or gzipped file; ValueError naming the file if it is not JSON."""
    try:
        with open_text(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def sidecar_path(json_path: Path) -> Path:
    """Where the Llama-2 token-count table of a ShareGPT JSON sits, e.g. `x_first_turn_...`."""
    stem = json_path.name.removesuffix(".gz").removesuffix(".json")
    return json_path.with_name(stem + SIDECAR_SUFFIX)


def read_sharegpt_tokens(
    path: Path, family: str = "llama2", pairing: str = "first-two"
) -> TraceTable:
    """A first-turn token table (`prompt_tokens_<family>,output_tokens_<family>[,from0,from1]`).

    The table holds messages 0 and 1 of each conversation (the vLLM/SGLang pairing).
    `family` picks the tokenizer's columns (llama2, llama3); `pairing="role-aware"` keeps only
    rows whose messages 0 and 1 were spoken by human and gpt (needs `from0`, `from1`).
    """
    if family not in FAMILIES:
        raise ValueError(f"tokenizer family: unknown {family!r}; valid: {', '.join(FAMILIES)}")
    cols = (f"prompt_tokens_{family}", f"output_tokens_{family}")
    roles = ("from0", "from1") if pairing == "role-aware" else ()
    df = read_csv(path, cols + roles)
    prompt = token_counts(df, cols[0], path, minimum=0)
    output = token_counts(df, cols[1], path, minimum=0)
    name = {"llama2": "Llama-2", "llama3": "Llama-3"}[family]
    notes: tuple[str, ...] = (f"{name} token counts",)
    if roles:
        keep = ((df["from0"] == "human") & (df["from1"] == "gpt")).to_numpy()
        notes += (f"role-aware: kept {int(keep.sum())} of {len(df)} pairs that open human -> gpt",)
        prompt, output = prompt[keep], output[keep]
    return drop_empty(prompt, output, str(path), notes)


USER_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant", "chatgpt", "bard", "bing", "model")
SYSTEM_ROLES = ("system",)


def _turns(messages: list, where: str, path: Path) -> list[tuple[str, object]]:
    """(role kind, text) per message: kind is user, assistant or system."""
    out = []
    for j, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValueError(f"{path}: {where}: message {j} is not an object")
        role = m.get("from", m.get("role"))
        if not isinstance(role, str):
            raise ValueError(f"{path}: {where}: message {j} has no 'from' (or 'role') string")
        r = role.strip().lower()
        if r in USER_ROLES:
            kind = "user"
        elif r in ASSISTANT_ROLES:
            kind = "assistant"
        elif r in SYSTEM_ROLES:
            kind = "system"
        else:
            valid = ", ".join((*USER_ROLES, *ASSISTANT_ROLES, *SYSTEM_ROLES))
            raise ValueError(f"{path}: {where}: message {j} has role {role!r}; valid: {valid}")
        out.append((kind, m.get("value", m.get("content"))))
    return out


def first_request(turns: list[tuple[str, object]]) -> tuple[str, str] | str:
    """The (prompt, output) texts of a conversation's first request, or why it has none.

    Rule: system turns before the first user turn are prepended to the prompt (a chat template
    puts the system prompt first); assistant turns before it are skipped; the prompt is the
    first user turn and the output the assistant turn right after it. A null or non-string
    text in those turns, or an empty reply, rejects the conversation.
    """
    system: list[object] = []
    i = 0
    while i < len(turns) and turns[i][0] != "user":
        if turns[i][0] == "system":
            system.append(turns[i][1])
        i += 1
    if i == len(turns):
        return "no user turn"
    if i + 1 == len(turns) or turns[i + 1][0] != "assistant":
        return "no assistant reply after the first user turn"
    texts = [*system, turns[i][1], turns[i + 1][1]]
    if not all(isinstance(t, str) for t in texts):
        return "null or non-string text"
    if not str(turns[i + 1][1]).strip():
        return "empty reply"
    return "\n".join([*system, turns[i][1]]), turns[i + 1][1]


def first_two(turns: list[tuple[str, object]]) -> tuple[str, str] | str:
    """The first two messages whoever spoke them (vLLM's and SGLang's pairing), or why not.

    The system rule holds here too: leading system turns are prepended to the prompt and the
    two messages after them are paired (vLLM/SGLang would take the system prompt as the prompt
    and the user's question as the output). Fewer than 2 such messages, a null or non-string
    text, or an empty reply reject the conversation, as in `first_request`.
    """
    i = 0
    while i < len(turns) and turns[i][0] == "system":
        i += 1
    if len(turns) - i < 2:
        return "fewer than 2 messages"
    texts = [t for _, t in turns[: i + 2]]
    if not all(isinstance(t, str) for t in texts):
        return "null or non-string text"
    if not str(texts[-1]).strip():
        return "empty reply"
    return "\n".join(texts[:-1]), texts[-1]


def read_sharegpt(
    path: Path, tokenizer: str = "approx", family: str = "llama2", pairing: str = "first-two"
) -> TraceTable:
    """The first request of each ShareGPT conversation (JSON array or JSON lines), as tokens.

    `pairing` role-aware reads roles (see `first_request`); first-two takes messages 0 and 1
    (`first_two`). Conversations without a usable first request are rejected and counted per
    reason. A record that is not `{"conversations": [{"from",
    "value"}, ...]}` (or `messages` with `role`/`content`) is a one-line error naming it.
    With the `approx` tokenizer, a count table next to the JSON (see `sidecar_path`) is
    preferred, its `family` columns and `pairing` (see `read_sharegpt_tokens`): real counts
    beat an approximation. A `.csv` path is read as such a table.
    """
    if path.suffix == ".csv":
        return read_sharegpt_tokens(path, family, pairing)
    sidecar = sidecar_path(path)
    if tokenizer == "approx" and sidecar.is_file():
        table = read_sharegpt_tokens(sidecar, family, pairing)
        return table.standing_in_for_text(sidecar.name)
    prompts: list[str] = []
    outputs: list[str] = []
    rejected: dict[str, int] = {}
    records = read_records(path)
    for where, entry in records:
        messages = None
        if isinstance(entry, dict):
            messages = entry.get("conversations", entry.get("messages"))
        if not isinstance(messages, list):
            raise ValueError(
                f"{path}: {where} has no 'conversations' list; expected "
                '{"conversations": [{"from": ..., "value": ...}, ...]}'
            )
        turns = _turns(messages, where, path)
        got = first_two(turns) if pairing == "first-two" else first_request(turns)
        if isinstance(got, str):
            rejected[got] = rejected.get(got, 0) + 1
            continue
        prompts.append(got[0])
        outputs.append(got[1])
    if not prompts:
        why = "; ".join(f"{n} {k}" for k, n in rejected.items()) or "no records"
        raise ValueError(f"{path}: no conversation has a usable first request ({why})")
    notes = [f"tokenizer {tokenizer_label(tokenizer)}"]
    if tokenizer == "approx" and family != "llama2":
        notes.append(f"approx counts are Llama-2-like; no {family} count table beside {path.name}")
    notes.append(
        "pairing: first two messages after any system turns (vLLM/SGLang), system prepended"
        if pairing == "first-two"
        else "pairing: role-aware (first user turn and its reply, system turns prepended)"
    )  # fmt: skip
    if rejected:
        notes.append(
            f"rejected {sum(rejected.values())} of {len(records)} conversations: "
            + ", ".join(f"{n} {k}" for k, n in sorted(rejected.items()))
        )
    count = make_counter(tokenizer)
    table = drop_empty(count(prompts), count(outputs), str(path), tuple(notes))
    return TraceTable(table.prompt_tokens, table.output_tokens, None, table.source, table.notes,
                      table.num_empty + sum(rejected.values()))  # fmt: skip


def sharegpt_keep(
    prompt: np.ndarray, output: np.ndarray, name: str, bos_counted: bool = False
) -> np.ndarray:
    """Mask of requests a benchmark's ShareGPT filter keeps.

    vllm: drop prompt < 4, output < 4, prompt > 1024 or prompt + output > 2048;
    sglang: drop prompt < 2 or output < 2; none: keep all. Both count BOS in each length, so
    it is added here unless the counts already hold it (`bos_counted`).
    """
    extra = 0 if bos_counted else 1
    p, o = prompt + extra, output + extra
    if name == "vllm":
        return (p >= 4) & (o >= 4) & (p <= 1024) & (p + o <= 2048)
    if name == "sglang":
        return (p >= 2) & (o >= 2)
    if name == "none":
        return np.ones(len(prompt), bool)
    raise ValueError(f"sharegpt_filter: unknown {name!r}; valid: vllm, sglang, none")
