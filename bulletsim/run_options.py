"""`run`'s options -> a checked RunConfig and results folder, before any simulation.

Shared by the commands that take run's options (`run`, `live`, and `sweep` for the size
check). Everything here runs before any work: names, values, conflicting flags, the memory a
run would need, and the results folder (never one bulletsim did not write). User errors exit
with code 2 through `cli_errors.fail`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from bulletsim.cli_errors import USER_ERRORS, fail


def config_from_options(o: dict):
    """The RunConfig that `run`'s options (a dict of them by name) describe; shared by the
    commands that take run's options (`live`). Checks everything before any work: names,
    values, conflicting flags and the memory the run would need. User errors exit with 2."""
    from bulletsim.config import (
        check_flags_agree_with_sets,
        check_set_sections,
        load_config,
        merge_overrides,
        parse_sets,
    )
    from bulletsim.policy_spec import check_file_sections, check_spec_agrees, parse_policy_spec

    chunked = {
        "chunk_size": o["chunk_size"],
        "variant": o["variant"],
        "max_running_requests": o["max_running"],
    }
    overrides = {
        "policy": o["policy"],
        "gpu": o["gpu"],
        "model": o["model"],
        "tp": o["tp"],
        "latency": o["latency"],
        "seed": o["seed"],
        "model_config": str(o["model_config"]) if o.get("model_config") else None,
        "profile": str(Path(o["profile"]).expanduser().resolve()) if o.get("profile") else None,
        "workload": {
            "trace": o["trace"],
            "trace_file": str(o["trace_file"]) if o["trace_file"] else None,
            "traces_dir": str(o["traces_dir"]) if o["traces_dir"] else None,
            "arrival": o["arrival"],
            "rate": o["rate"],
            "cv": o["cv"],
            "time_scale": o["time_scale"],
            "num_requests": o["num_requests"],
            "duration_s": o["duration"],
            "max_total_tokens": o["max_total_tokens"],
            "over_length": o["over_length"],
            "tokenizer": o["tokenizer"],
            "sharegpt_filter": o["sharegpt_filter"],
            "convention": o.get("convention"),
            "trace_format": o.get("trace_format"),
            "timestamp_unit": o.get("timestamp_unit"),
            "trace_model": o.get("trace_model"),
            "input_len": o.get("input_len"),
            "output_len": o.get("output_len"),
            "range_ratio": o.get("range_ratio"),
            "range_convention": o.get("range_convention"),
            "max_concurrency": o.get("max_concurrency"),
            "think_s": o.get("think_time"),
        },
        "slo": {
            "tpot_ms": o["tpot_ms"],
            "ttft_ms": o["ttft_ms"],
            "norm_ttft_ms_per_token": o["norm_ttft_ms"],
        },
        "kv": {"capacity_blocks": o["kv_blocks"]},
        "chunked": chunked,
    }
    try:
        given_sets = parse_sets(o["set_"])
        spec = None
        if o["policy"] is not None:  # NAME or NAME:key=value,... (as sweep's --policy)
            name, policy, params = parse_policy_spec(o["policy"])
            if ":" in o["policy"]:  # a bare name or alias (chunked-1024) is load_config's
                options = {**mechanism_sections(o.get("mechanism")), "chunked": chunked}
                check_spec_agrees(o["policy"], policy, params, given_sets, options)
                spec = (policy, params)
            overrides["policy"] = name
        check_flags_agree_with_sets(overrides, given_sets)
        check_mechanism_sources(o)
        sets = mechanism_overrides(o.get("mechanism"), given_sets)
        if spec is not None:
            sets = merge_overrides(sets, {spec[0]: spec[1]})
        cfg = load_config(o["config"], merge_overrides(overrides, sets))
        check_mechanism_applies(o.get("mechanism"), (cfg.policy,))
        check_set_sections(given_sets, (cfg.policy,))
        check_file_sections(o["config"], (cfg.policy,))
        flags = {"chunk_size": "--chunk-size", "variant": "--variant"}
        given = [flags.get(k, "--max-running") for k, v in chunked.items() if v is not None]
        if given and cfg.policy != "chunked":
            raise ValueError(
                f"{', '.join(given)} set chunked prefill, but the policy is {cfg.policy}; "
                f"use --set {cfg.policy}.KEY=VALUE (see `bulletsim policies`)"
            )
        check_run_size(cfg.workload.num_requests, cfg.workload.rate, cfg.workload.duration_s)
    except USER_ERRORS as e:
        fail(str(e))
    return cfg


def mechanism_sections(mechanism: str | None) -> dict:
    """Policy sections that `--mechanism` sets ({} without it): `mechanism` (canonical name,
    `hardware.resolve_mechanism`) for every policy that takes it as a parameter. Its
    granularity and re-partition cost follow from it at run time (`partitioning`), however
    it was given. ValueError for an unknown mechanism."""
    from bulletsim.hardware import resolve_mechanism
    from bulletsim.policies.registry import POLICY_PARAMS, has_mechanism_param

    if mechanism is None:
        return {}
    m = resolve_mechanism(mechanism)
    return {name: {"mechanism": m} for name in POLICY_PARAMS if has_mechanism_param(name)}


def mechanism_overrides(mechanism: str | None, sets: dict) -> dict:
    """`--set` overrides with `--mechanism` merged in; ValueError when the two name different
    mechanisms for one policy (aliases resolved first: `--mechanism green` and `--set
    bullet.mechanism=green-ctx` agree). A config file's value that disagrees with either, or
    two `--set`s that disagree, are refused first (`check_mechanism_sources`)."""
    from bulletsim.config import merge_overrides
    from bulletsim.hardware import resolve_mechanism

    sections = mechanism_sections(mechanism)
    for name, sec in sections.items():
        section = sets.get(name)
        given = section.get("mechanism") if isinstance(section, dict) else None
        if given is not None and resolve_mechanism(given) != sec["mechanism"]:
            raise ValueError(
                f"--mechanism {mechanism} conflicts with --set {name}.mechanism={given}; "
                "give one of them"
            )
    return merge_overrides(sections, sets)


def mechanism_sources(o: dict) -> dict[str, list[tuple[str, object]]]:
    """Policy (one that takes a mechanism) -> [(source, value)] for each place `run`'s or
    `sweep`'s options `o` name its mechanism: the config file's `[POLICY] mechanism`, each
    `--set POLICY.mechanism=V` (repeats included), run's `--policy POLICY:mechanism=V`,
    `--mechanism`. Values as given."""
    import tomllib

    from bulletsim.config import parse_sets
    from bulletsim.policies.registry import has_mechanism_param, policy_names
    from bulletsim.policy_spec import parse_policy_spec

    takers = {n for n in policy_names() if has_mechanism_param(n)}
    out: dict[str, list[tuple[str, object]]] = {}
    if o.get("config") is not None:
        try:
            doc = tomllib.loads(Path(o["config"]).expanduser().read_text())
        except (OSError, ValueError):
            doc = {}  # loading the config for the run reports it
        for key, sec in doc.items():
            if isinstance(sec, dict) and "mechanism" in sec and key.lower() in takers:
                src = f"config file {o['config']} [{key}] mechanism = {sec['mechanism']!r}"
                out.setdefault(key.lower(), []).append((src, sec["mechanism"]))
    for item in o.get("set_") or []:
        try:
            sec = parse_sets([item])
        except ValueError:
            continue  # reported by the run's own parse
        for key, val in sec.items():
            if isinstance(val, dict) and "mechanism" in val and key.lower() in takers:
                out.setdefault(key.lower(), []).append((f"--set {item.strip()}", val["mechanism"]))
    for text in [o["policy"]] if ":" in (o.get("policy") or "") else []:
        try:
            _, name, params = parse_policy_spec(text)
        except ValueError:
            continue  # reported by the run's own parse
        if "mechanism" in params and name in takers:
            out.setdefault(name, []).append((f"--policy {text}", params["mechanism"]))
    if o.get("mechanism") is not None:
        for name in sorted(takers):
            out.setdefault(name, []).append((f"--mechanism {o['mechanism']}", o["mechanism"]))
    return out


def check_mechanism_sources(o: dict) -> dict[str, str]:
    """Policy -> the source that sets its mechanism; ValueError (one line) when two sources
    name different mechanisms for one policy (aliases resolved first: `green` = `green-ctx`),
    or one names no mechanism (the valid ones listed)."""
    from bulletsim.hardware import resolve_mechanism

    named = {}
    for policy, given in mechanism_sources(o).items():
        seen: dict[str, str] = {}
        for src, value in given:
            try:
                seen.setdefault(resolve_mechanism(value), src)
            except ValueError as e:
                raise ValueError(f"{src}: {e}") from None
        if len(seen) > 1:
            raise ValueError(
                f"{policy}.mechanism is given differently: {'; '.join(seen.values())}; "
                "give one (or the same mechanism everywhere)"
            )
        named[policy] = " and ".join(src for src, _ in given)
    return named


def mechanism_given(o: dict) -> bool:
    """Whether `run`'s options `o` name a mechanism anywhere: `--mechanism`, `--set
    POLICY.mechanism`, `--policy POLICY:mechanism=V` or the config file's `[POLICY] mechanism`
    (for a policy that takes one).
    A command with its own default (`live`) adds it as `--mechanism` only when none is."""
    import tomllib

    from bulletsim.config import parse_sets
    from bulletsim.policies.registry import has_mechanism_param, policy_names

    if o.get("mechanism") is not None or mechanism_sources({"policy": o.get("policy")}):
        return True
    sections = [parse_sets(o.get("set_"))]
    if o.get("config") is not None:
        try:
            sections.append(tomllib.loads(Path(o["config"]).expanduser().read_text()))
        except (OSError, ValueError):
            pass  # loading the config for the run reports it
    return any(
        isinstance(sec.get(k), dict) and "mechanism" in sec[k]
        for sec in sections
        for k in sec
        if isinstance(k, str) and k.lower() in policy_names() and has_mechanism_param(k.lower())
    )


def check_mechanism_applies(mechanism: str | None, policies: tuple[str, ...]) -> None:
    """`--mechanism` must reach one of `policies` (registered names): only a policy that takes
    its mechanism as a parameter (Bullet) does; ValueError saying how the others share SMs."""
    from bulletsim.policies.registry import has_mechanism_param, mechanism_note, policy_names

    if mechanism is None or any(has_mechanism_param(p) for p in policies):
        return
    takers = [n for n in policy_names() if has_mechanism_param(n)]
    raise ValueError(
        f"--mechanism applies only to {' and '.join(takers)} (its SM partition mechanism is a "
        f"parameter); {'; '.join(mechanism_note(p) for p in dict.fromkeys(policies))}"
    )


def run_out_dir(cfg, out: str | None, no_write: bool, suffix: str = "") -> Path | None:
    """The checked results folder (None with --no-write), before any simulation; exits 2
    (also for --no-write with --out, which would write nothing there)."""
    if no_write and out is not None:
        fail(f"--no-write writes no files, so --out {out} would be ignored: give one of them")
    if no_write:
        return None
    try:
        return _run_out_dir(cfg, out, suffix)
    except USER_ERRORS as e:
        fail(str(e))


def _run_out_dir(cfg, out: str | None, suffix: str = "") -> Path:
    """The checked results folder; says so when an earlier run of this config is replaced
    (files it keeps are named once it is replaced: `outdir.staged_dir`)."""
    from bulletsim.outdir import check_out_dir, is_bulletsim_dir

    if out is not None:
        path = check_out_dir(out, "run")
    else:
        path = check_out_dir(Path("results") / "runs" / (default_run_name(cfg) + suffix), "run")
        if is_bulletsim_dir(path, "run"):
            typer.echo(f"note: replacing the earlier run of this same config in {path}", err=True)
    return path


def default_run_name(cfg) -> str:
    """<trace>-<policy>-<gpu>-<model>-s<seed>-<hash>: the hash covers the whole resolved config
    (and the real trace file found), so runs that differ in anything get different folders."""
    from bulletsim.outdir import config_hash
    from bulletsim.workload.catalog import trace_info
    from bulletsim.workload.resolve import find_trace_file

    info = trace_info(cfg.workload.trace)
    found = find_trace_file(info, cfg.workload.trace_file, cfg.workload.traces_dir)
    resolved = {"config": cfg.to_dict(), "trace_file": str(found.resolve()) if found else None}
    for key in ("trace_file", "traces_dir"):
        value = resolved["config"]["workload"][key]
        if value is not None:
            resolved["config"]["workload"][key] = str(Path(value).expanduser().resolve())
    policy = cfg.policy + (f"-{cfg.params().chunk_size}" if cfg.policy == "chunked" else "")
    parts = [info.name, policy, cfg.gpu, cfg.model, f"s{cfg.seed}", config_hash(resolved)]
    return "-".join(parts)


# Peak memory per simulated request: 292 MB for 100,000 requests (README, "Simulator speed",
# benchmarks/bench_sim.py), rounded up.
BYTES_PER_REQUEST = 3_000


def check_run_size(num: int | None, rate: float | None, duration_s: float | None) -> None:
    """Refuse, before any work, a run whose requests would not fit in this machine's memory."""
    import math
    import os

    expected = num
    if expected is None and rate is not None and duration_s is not None and math.isfinite(rate):
        expected = int(rate * duration_s)
    if expected is None:
        return
    need = expected * BYTES_PER_REQUEST
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > 0.8 * have:
        raise ValueError(
            f"{expected:,} requests would need about {need / 2**30:,.0f} GiB of memory "
            f"(~{BYTES_PER_REQUEST / 1e3:g} kB per request); this machine has "
            f"{have / 2**30:,.0f} GiB; ask for fewer (-n) or split the run"
        )
