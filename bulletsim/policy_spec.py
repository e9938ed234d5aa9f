"""`--policy` specs and the other places a policy's parameters come from.

A spec is `NAME` or `NAME:key=value,key=value` (run, live and sweep take the same); NAME as
`config.resolve_policy` takes it (case-insensitive, `chunked-N`). A list value (pdmux's
`manual_divisions` rows) may continue after a comma with pieces that hold no `=`. Refused,
one line each: nothing after the ':', an empty option (`a=1,,b=2`), a key without a value
(`key=`), a value without a key (`=v`), a key given twice, and an option that disagrees with
the name's own parameter (`chunked-1024:chunk_size=2048`).

The parameters of one policy may also come from `--set POLICY.key=value` and a config file's
`[POLICY]` section; `check_spec_agrees` refuses a spec and a `--set` (or a dedicated option)
that give one key different values, and `check_file_sections` a config file's section for a
policy the run does not run (as `config.check_set_sections` does for `--set`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPEC_FORMAT = "NAME or NAME:key=value,key=value (e.g. bullet:window_layers=4)"


def parse_policy_spec(text: str) -> tuple[str, str, dict[str, Any]]:
    """`"pdmux:min_sms=16"` -> (name as typed, registered policy, parameters).

    The parameters include what the name implies (`chunked-1024` -> chunk_size 1024).
    ValueError (one line, naming the spec and the valid form) for a malformed spec or an
    unknown name (the valid names listed)."""
    from bulletsim.config import parse_sets, resolve_policy

    name, colon, rest = text.partition(":")
    policy, params = resolve_policy(name)
    if not colon:
        return name.strip(), policy, dict(params)
    items = _spec_items(text, rest)
    keys = [item.split("=", 1)[0].strip() for item in items]
    for key in keys:
        if keys.count(key) > 1:
            raise ValueError(f"--policy {text!r}: {key} is given twice; give each key once")
    try:
        given = parse_sets([f"{policy}.{kv}" for kv in items], f"--policy {name.strip()}:")
    except ValueError as e:
        raise ValueError(f"--policy {text!r}: {e}") from None
    given = given.get(policy, {})
    for key, value in params.items():  # what the name implies, e.g. chunked-1024
        if key in given and given[key] != value:
            raise ValueError(
                f"--policy {text!r}: {name.strip()} means {key}={value}, the option says "
                f"{given[key]!r}; give one"
            )
    return name.strip(), policy, {**params, **given}


def _spec_items(text: str, rest: str) -> list[str]:
    """ "a=1,b=x,y" -> ["a=1", "b=x,y"]: a piece without '=' continues the previous value (a
    list such as pdmux's manual_divisions rows); empty pieces and keys or values are errors."""
    if not rest.strip():
        raise ValueError(f"--policy {text!r}: no options after ':'; give {SPEC_FORMAT}")
    items: list[str] = []
    for piece in rest.split(","):
        if not piece.strip():
            raise ValueError(f"--policy {text!r}: an empty option; give {SPEC_FORMAT}")
        if "=" in piece.split(":")[0] or not items:
            key, eq, value = piece.partition("=")
            if not eq or not key.strip() or not value.strip():
                what = "a key without '=value'" if not eq or not value.strip() else "no key"
                raise ValueError(
                    f"--policy {text!r}: {piece.strip()!r} has {what}; give {SPEC_FORMAT}"
                )
            items.append(piece)
        else:
            items[-1] += "," + piece
    return items


def spec_label(text: str) -> str:
    """The label a sweep gives spec `text` (its results' `label`): the name lower-cased, the
    options as typed."""
    name, colon, rest = text.partition(":")
    return name.strip().lower() + (f":{rest}" if colon else "")


def check_spec_agrees(
    text: str, policy: str, params: dict, sets: dict, options: dict, sets_name: str = "--set"
) -> None:
    """A spec's parameters (`parse_policy_spec`) against `--set` (`sets`, from
    `config.parse_sets`) and a command's dedicated options (`options`: section -> key ->
    value, None where not given): ValueError (one line) naming both when one key gets two
    values (`--set pdmux.min_sms=16 --policy pdmux:min_sms=24`); neither silently wins.
    `sets_name`: how messages name where `sets` came from (a design's "[base]")."""
    for source, table in (("--set", sets), ("option", options)):
        section = table.get(policy)
        for key, value in params.items() if isinstance(section, dict) else ():
            other = section.get(key)
            if other is None or _same(key, other, value):
                continue
            by = (
                f"{sets_name} {policy}.{key}={other!r}"
                if source == "--set"
                else f"its option ({other!r})"
            )
            raise ValueError(
                f"{policy}.{key} is given twice: by --policy {text} ({value!r}) and by {by}; "
                "give one"
            )


def _same(key: str, a: Any, b: Any) -> bool:
    """Equal values, mechanisms by their canonical name (`green` = `green-ctx`)."""
    if key == "mechanism" and isinstance(a, str) and isinstance(b, str):
        from bulletsim.hardware import resolve_mechanism

        try:
            return resolve_mechanism(a) == resolve_mechanism(b)
        except ValueError:
            pass  # an unknown name is reported where the config is built
    return a == b


def check_file_sections(path: str | Path | None, policies: tuple[str, ...]) -> None:
    """A config file's `[SECTION]` for a policy not in `policies` (the run's, registered
    names) would do nothing: ValueError naming the section and the run's policies, as
    `--set` for such a policy is refused. A file that does not read is left to the loader."""
    import tomllib

    from bulletsim.policies.registry import unused_policy_sections

    if path is None:
        return
    try:
        doc = tomllib.loads(Path(path).expanduser().read_text())
    except (OSError, ValueError):
        return  # loading the config for the run reports it
    for key in unused_policy_sections(doc, policies)[:1]:
        raise ValueError(
            f"config file {path}: [{key}] is for {key.lower()}, not a policy of this run "
            f"({', '.join(policies)}), so its parameters would do nothing; run it with "
            f"--policy {key.lower()}, or remove the section"
        )
