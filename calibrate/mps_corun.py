"""Bullet's two-process layout under MPS: prefill and decode as separate processes.

    python3 -m calibrate.mps_corun --out DIR [--suite smoke|table] [--libsmctrl PATH]

For each configuration a prefill and a decode process (`calibrate.mps_worker`) are started
with their own environment; each times its lane's iteration alone (the other process idle,
its context alive) and then both together. Configurations: without MPS (two contexts
time-slice), under MPS at 100% each, with `CUDA_MPS_ACTIVE_THREAD_PERCENTAGE` (decode 25%,
prefill 75%), and with libsmctrl stream masks inside each process (decode TPCs 0-15 = 32
SMs, prefill TPCs 16-65). The MPS daemon is ours (`bulletsim.gpu.mps.MpsDaemon`: its own
pipe/log folders under /tmp, `quit` on every exit path); workers that do not answer within
`--timeout-s` are killed. Writes `DIR/mps_corun.json` and prints the table last.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bulletsim.gpu.mps import CONTROL
from calibrate.own_files import (
    check_outputs,
    is_own_json,
    is_own_text,
    marker_line,
    write_json_atomic,
)
from calibrate.tool_cli import (
    ToolParser,
    positive_int,
    positive_seconds,
    require_gpu,
    require_libsmctrl,
    require_out_folder,
    run_tool,
)

# name, uses MPS, per role: (active-thread percentage or None, libsmctrl "first:count" or None)
CONFIGS = {
    "no-mps": (False, {"prefill": (None, None), "decode": (None, None)}),
    "mps": (True, {"prefill": (None, None), "decode": (None, None)}),
    "mps-pct": (True, {"prefill": (75, None), "decode": (25, None)}),
    "mps-mask": (True, {"prefill": (None, "16:50"), "decode": (None, "0:16")}),
    "mps-pct-mask": (True, {"prefill": (75, "16:50"), "decode": (25, "0:16")}),
}
SUITES = {
    "smoke": ("mps-pct", "mps-mask"),
    "table": ("no-mps", "mps", "mps-pct", "mps-mask", "mps-pct-mask"),
}
PHASES = (("alone", ("prefill",)), ("alone", ("decode",)), ("together", ("prefill", "decode")))


def _signal(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # atomic: a worker never reads half a word


def run_config(name: str, daemon, a, log) -> dict:
    uses_mps, roles = CONFIGS[name]
    sync = Path(tempfile.mkdtemp(prefix=f"mpsco-{name}-"))
    procs: dict[str, subprocess.Popen] = {}

    def start() -> None:
        for role, (pct, tpcs) in roles.items():
            env = daemon.client_env() if uses_mps else dict(os.environ)
            if not uses_mps:  # a client without the pipe variable would look in /tmp/nvidia-mps
                env.pop("CUDA_MPS_PIPE_DIRECTORY", None)
            if pct is not None:
                env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(pct)
            cmd = [sys.executable, "-m", "calibrate.mps_worker", "--role", role]
            cmd += ["--sync", str(sync), "--duration-s", str(a.duration_s)]
            cmd += ["--layers", str(a.layers)]
            if tpcs:
                cmd += ["--tpcs", tpcs] + (["--libsmctrl", a.libsmctrl] if a.libsmctrl else [])
            procs[role] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            if a.mps_dir:  # for the shell's EXIT trap: kill these by pid if we die
                with open(Path(a.mps_dir) / "workers.pids", "a") as f:
                    f.write(f"{procs[role].pid}\n")

    def wait(path: Path) -> dict:
        deadline = time.monotonic() + a.timeout_s
        while not path.exists():
            dead = [r for r, p in procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name}: no {path.name} ({'exited: ' + str(dead) if dead else 'timeout'})"
                )
            time.sleep(0.005)
        return json.loads(path.read_text())

    out: dict = {"config": name, "mps": uses_mps, "roles": {}}
    try:
        start()
        ready = {r: wait(sync / f"ready_{r}") for r in roles}
        phases: dict[str, dict] = {r: {} for r in roles}
        for phase, who in PHASES:
            for r in who:
                _signal(sync / f"go_{r}", phase)
            for r in who:
                phases[r][phase] = wait(sync / f"done_{phase}_{r}")
        for r in roles:
            _signal(sync / f"go_{r}", "exit")
        for p in procs.values():
            p.wait(timeout=a.timeout_s)
        for r in roles:
            pct, tpcs = roles[r]
            al, to = phases[r]["alone"]["median_ms"], phases[r]["together"]["median_ms"]
            out["roles"][r] = {
                "active_thread_pct": pct,
                "tpcs": tpcs,
                **{
                    k: ready[r][k]
                    for k in (
                        "probed_sms",
                        "context_s",
                        "new_context_ms",
                        "affinity_context",
                        "import_s",
                        "setup_s",
                    )
                },
                "free_gib_at_context": round(ready[r]["free_bytes_at_context"] / 2**30, 2),
                "alone_ms": al,
                "together_ms": to,
                "slowdown": round(to / al, 3),
                # iterations done in the same window: catches waits between iterations
                # (time-slicing) that per-iteration events do not see; n counts in tens
                "throughput_slowdown": round(
                    phases[r]["alone"]["n"] / max(phases[r]["together"]["n"], 1), 3
                ),
                "iteration_tflops_alone": round(ready[r]["iteration_flops"] / al / 1e9, 1),
                "phases": phases[r],
            }
        out["status"] = "ok"
    except (RuntimeError, OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        out["status"] = f"failed: {e}"
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        if a.mps_dir:  # all reaped: no stale pid may be killed later
            (Path(a.mps_dir) / "workers.pids").write_text("")
        shutil.rmtree(sync, ignore_errors=True)  # our own mkdtemp folder
    return out


def table_lines(results: list[dict]) -> list[str]:
    lines = [
        f"{'config':<13} {'lane':<8} {'pct':>4} {'tpcs':>6} {'SMs':>4} {'ctx s':>6} {'+ctx ms':>7} "
        f"{'alone ms':>9} {'together':>9} {'slowdown':>8}"
    ]
    for r in results:
        if r.get("status") != "ok":
            lines.append(f"{r['config']:<13} {r.get('status')}")
            continue
        for lane, x in r["roles"].items():
            lines.append(
                f"{r['config']:<13} {lane:<8} {x['active_thread_pct'] or '-':>4} "
                f"{x['tpcs'] or '-':>6} {x['probed_sms']!s:>4} {x['context_s']:>6.2f} "
                f"{x['new_context_ms']!s:>7} "
                f"{x['alone_ms']:>9.3f} {x['together_ms']:>9.3f} {x['slowdown']:>8.3f}"
            )
    return lines


TOOL = "calibrate.mps_corun"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Checked arguments (configs, numbers, --out and the files there, --mps-dir); ValueError
    (one line) otherwise. Nothing is started here."""
    ap = ToolParser(prog=TOOL, description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--suite", choices=sorted(SUITES), default="table")
    ap.add_argument("--configs", default=None, help="comma list overriding --suite")
    ap.add_argument("--libsmctrl", default=os.environ.get("LIBSMCTRL_PATH"))
    ap.add_argument("--duration-s", type=positive_seconds, default=2.0)
    ap.add_argument("--layers", type=positive_int, default=4)
    ap.add_argument("--timeout-s", type=positive_seconds, default=60.0)
    ap.add_argument("--mps-dir", default=None, help="folder for the daemon's pipe/ and log/")
    a = ap.parse_args(argv)
    a.names = [n.strip() for n in a.configs.split(",")] if a.configs else list(SUITES[a.suite])
    bad = [n for n in a.names if n not in CONFIGS]
    if bad or not a.names:
        raise ValueError(f"--configs: unknown {bad or a.configs!r}; valid: {', '.join(CONFIGS)}")
    a.out = require_out_folder(a.out, "--out")
    check_outputs(
        a.out,
        {
            "mps_corun.json": lambda p: is_own_json(p, TOOL),
            "workers.log": lambda p: is_own_text(p, TOOL),
        },
        TOOL,
    )
    if a.mps_dir is not None:
        a.mps_dir = str(require_out_folder(a.mps_dir, "--mps-dir"))
    return a


def check_machine(a: argparse.Namespace) -> None:
    """ValueError (one line) unless this machine can run the chosen configurations: a GPU,
    libsmctrl for the masked ones, the MPS control binary for the MPS ones."""
    if any(tpcs for n in a.names for _, tpcs in CONFIGS[n][1].values()):
        a.libsmctrl = require_libsmctrl(a.libsmctrl)
    require_gpu(TOOL)
    mps = [n for n in a.names if CONFIGS[n][0]]
    if mps and shutil.which(CONTROL) is None:
        raise ValueError(
            f"configurations {', '.join(mps)} need the MPS daemon, and {CONTROL} is not on PATH "
            "(NVIDIA driver utilities); valid without it: --configs no-mps"
        )


def main(argv: list[str] | None = None) -> int:
    from bulletsim.gpu.mps import MpsDaemon, MpsUnavailable

    a = parse_args(argv)
    check_machine(a)
    names = a.names
    # `timeout` sends SIGTERM: unwind (kill the workers, quit the daemon) instead of dying.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    a.out.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    doc: dict = {"suite": a.suite, "configs": names, "duration_s": a.duration_s, "layers": a.layers}
    log_path = a.out / "workers.log"
    if not log_path.exists():
        log_path.write_text(marker_line(TOOL) + "\n")
    with open(log_path, "ab") as log:
        for n in [n for n in names if not CONFIGS[n][0]]:  # before any daemon exists
            results.append(run_config(n, None, a, log))
        mps_names = [n for n in names if CONFIGS[n][0]]
        if mps_names:
            try:
                daemon = MpsDaemon(a.mps_dir)
                with daemon:
                    pid = daemon.pid()
                    doc["daemon"] = {"pipe": str(daemon.pipe_dir), "pid": pid}
                    for n in mps_names:
                        results.append(run_config(n, daemon, a, log))
                    doc["daemon"]["server_list"] = daemon.control("get_server_list")
                doc["daemon"]["control_log_tail"] = daemon.log_tail()
                time.sleep(0.5)
                doc["daemon"]["stopped"] = not daemon.running(pid)
            except MpsUnavailable as e:
                doc["daemon"] = {"error": str(e)}
                results += [{"config": n, "status": f"failed: {e}"} for n in mps_names]
    doc["results"] = results
    write_json_atomic(a.out / "mps_corun.json", TOOL, doc)
    print("\n".join(table_lines(results)))
    return 0 if all(r.get("status") == "ok" for r in results) else 1


if __name__ == "__main__":
    run_tool(lambda: sys.exit(main()))
