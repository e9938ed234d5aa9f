"""Does a libsmctrl stream mask do what it says on this GPU? Proofs with the `%smid` probe.

    python3 -m calibrate.libsmctrl_check selftest graph remask --libsmctrl PATH --out DIR

(`bulletsim calibrate-selftest libsmctrl` runs `selftest`.) Parts, each written to
`DIR/<part>.json` and summarised on stdout; every probe runs under a `Watchdog` (a hang exits
the process with code 3, so a caller runs each part in its own process):
- selftest: one launch per single-TPC mask maps mask bit -> SMs (%smid); then masks of several
  sizes and shapes, bits >= 64 included (the H200 has 66 TPCs: `_ext` call), must run on
  exactly the union of their TPCs' SMs; two complementary masked streams probed concurrently
  must stay disjoint. Passes only if every check holds;
- graph: a probe captured into a CUDA graph on a masked stream, replayed after the stream's
  mask changed, on another masked stream and on an unmasked one (and the reverse): which mask
  does a replay honour, the one at capture or the replaying stream's current one?
- remask: host cost of changing a stream's mask (the ctypes call), and of a launch right after.
GPU-only when run; the verdict helpers at the top are plain Python (CPU-tested).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

from calibrate.own_files import check_outputs, is_own_json, write_json_atomic
from calibrate.tool_cli import (
    ToolParser,
    positive_seconds,
    require_gpu,
    require_libsmctrl,
    require_out_folder,
    run_tool,
)


def mask_of(enabled_tpcs: set[int], total_tpcs: int) -> int:
    """Disabled-TPC bitmask allowing exactly `enabled_tpcs`."""
    en = 0
    for t in enabled_tpcs:
        en |= 1 << t
    return ((1 << total_tpcs) - 1) & ~en


def test_masks(total_tpcs: int, seed: int = 0) -> dict[str, set[int]]:
    """Named sets of enabled TPCs: low/high blocks, the TPCs above 63, even TPCs, random."""
    rng = random.Random(seed)
    all_t = range(total_tpcs)
    half = total_tpcs // 2
    masks = {
        "low4": set(range(4)),
        f"low{half}": set(range(half)),
        f"high{total_tpcs - half}": set(range(half, total_tpcs)),
        "even": {t for t in all_t if t % 2 == 0},
        "all": set(all_t),
    }
    if total_tpcs > 64:
        masks["above63"] = set(range(64, total_tpcs))
        masks["62-65"] = set(range(62, min(66, total_tpcs)))
    for k in (5, 20, 50):
        if k < total_tpcs:
            masks[f"random{k}"] = set(rng.sample(list(all_t), k))
    return masks


def map_verdict(tpc_sms: list[list[int]], num_sms: int) -> dict:
    """Checks on the single-TPC map: 2 SMs each, disjoint, covering the GPU; identity layout."""
    seen: list[int] = [s for sms in tpc_sms for s in sms]
    two_each = all(len(s) == 2 for s in tpc_sms)
    disjoint = len(seen) == len(set(seen))
    covers = set(seen) == set(range(num_sms))
    identity = all(sorted(s) == [2 * t, 2 * t + 1] for t, s in enumerate(tpc_sms))
    return {
        "two_sms_per_tpc": two_each,
        "disjoint": disjoint,
        "covers_all_sms": covers,
        "identity_tpc_t_is_sms_2t_2t1": identity,
        "ok": two_each and disjoint and covers,
    }


def expected_sms(enabled: set[int], tpc_sms: list[list[int]]) -> list[int]:
    return sorted(s for t in enabled for s in tpc_sms[t])


def classify_replays(replays: list[dict]) -> str:
    """'capture-mask' / 'stream-mask' / 'mixed': which mask each graph replay honoured
    (each replay: probed SMs, the SMs of the mask at capture, of the replaying stream's mask)."""
    cap = all(r["probed"] == r["capture_sms"] for r in replays)
    cur = all(r["probed"] == r["stream_sms"] for r in replays)
    if cap and not cur:
        return "capture-mask"
    if cur and not cap:
        return "stream-mask"
    if cap and cur:
        return "undetermined"
    return "mixed"


# -- GPU parts ---------------------------------------------------------------------------------
class Ctx:
    """The loaded library, the probe and a watchdog factory shared by the parts."""

    def __init__(self, lib_path: str | None, watchdog_s: float) -> None:
        import torch

        from bulletsim.gpu.libsmctrl import load_libsmctrl
        from bulletsim.gpu.probe import SmidProbe

        torch.cuda.init()
        self.torch = torch
        self.lib = load_libsmctrl(lib_path)
        self.num_sms = torch.cuda.get_device_properties(0).multi_processor_count
        self.total_tpcs = self.num_sms // 2
        self.probe = SmidProbe(num_blocks=4096)
        self.watchdog_s = watchdog_s

    def guard(self, what: str):
        from bulletsim.gpu.watchdog import Watchdog

        return Watchdog(self.watchdog_s, what)

    def stream(self, enabled: set[int] | None):
        from bulletsim.gpu.libsmctrl import new_raw_stream

        raw = new_raw_stream()
        if enabled is not None:
            self.lib.set_stream_mask(raw, mask_of(enabled, self.total_tpcs))
        return raw, self.torch.cuda.ExternalStream(raw)

    def set(self, raw: int, enabled: set[int] | None) -> None:
        self.lib.set_stream_mask(raw, 0 if enabled is None else mask_of(enabled, self.total_tpcs))

    def probe_now(self, stream, what: str) -> list[int]:
        with self.guard(what):
            return self.probe.probe(stream)


def selftest(c: Ctx) -> dict:
    raw, s = c.stream(None)
    tpc_sms = []
    for t in range(c.total_tpcs):
        c.set(raw, {t})  # re-masked per launch on one stream, as Bullet does
        tpc_sms.append(c.probe_now(s, f"probe TPC {t}"))
    mv = map_verdict(tpc_sms, c.num_sms)
    checks = []
    for name, enabled in test_masks(c.total_tpcs).items():
        c.set(raw, enabled)
        got = c.probe_now(s, f"probe mask {name}")
        exp = (
            expected_sms(enabled, tpc_sms)
            if mv["ok"]
            else sorted(x for t in enabled for x in (2 * t, 2 * t + 1))
        )
        checks.append(
            {
                "mask": name,
                "tpcs": len(enabled),
                "uses_bits_above_63": max(enabled) >= 64,
                "disabled_mask_hex": f"{mask_of(enabled, c.total_tpcs):x}",
                "sms_expected": len(exp),
                "sms_probed": len(got),
                "exact": got == exp,
            }
        )
    half = c.total_tpcs // 2
    ra, sa = c.stream(set(range(half)))
    rb, sb = c.stream(set(range(half, c.total_tpcs)))
    with c.guard("concurrent pair"):
        ia, ib = c.probe.probe_concurrent([sa, sb])
    pair = {
        "a_tpcs": half,
        "b_tpcs": c.total_tpcs - half,
        "a_sms": len(ia),
        "b_sms": len(ib),
        "disjoint": not set(ia) & set(ib),
        "exact": ia == expected_sms(set(range(half)), tpc_sms)
        and ib == expected_sms(set(range(half, c.total_tpcs)), tpc_sms),
    }
    ok = mv["ok"] and all(x["exact"] for x in checks) and pair["disjoint"] and pair["exact"]
    return {
        "passed": ok,
        "num_sms": c.num_sms,
        "total_tpcs": c.total_tpcs,
        "tpc_map": {"verdict": mv, "sms_of_tpc": tpc_sms},
        "masks": checks,
        "concurrent_pair": pair,
    }


def graph(c: Ctx) -> dict:
    """Which mask does a graph replay honour? Probe kernel captured on a masked stream."""
    from bulletsim.gpu.probe import sm_mask_hex

    torch = c.torch
    a, b, d = set(range(0, 4)), set(range(10, 20)), set(range(40, 66 if c.total_tpcs > 64 else 44))
    sms = {k: sorted(x for t in v for x in (2 * t, 2 * t + 1)) for k, v in {"a": a, "b": b}.items()}
    sms["d"] = sorted(x for t in d for x in (2 * t, 2 * t + 1))
    full = list(range(c.num_sms))
    buf = torch.full((c.probe.num_blocks,), -1, dtype=torch.int32, device="cuda")
    rows = []

    def replay(g, stream, what, capture_sms, stream_sms):
        from bulletsim.gpu.probe import decode

        buf.fill_(-1)
        torch.cuda.synchronize()
        with c.guard(what), torch.cuda.stream(stream):
            g.replay()
            stream.synchronize()
        got = decode(buf)
        rows.append(
            {
                "replay": what,
                "probed": got,
                "capture_sms": capture_sms,
                "stream_sms": stream_sms,
                "n_probed": len(got),
            }
        )

    def capture(stream):
        g = torch.cuda.CUDAGraph()
        c.probe.launch(stream, buf)  # warm-up outside capture
        stream.synchronize()
        with torch.cuda.graph(g, stream=stream):
            c.probe.launch(stream, buf)
        return g

    ra, sa = c.stream(a)
    with c.guard("capture on masked stream"):
        g1 = capture(sa)
    replay(g1, sa, "same stream, same mask", sms["a"], sms["a"])
    c.set(ra, b)
    replay(g1, sa, "same stream, mask changed after capture", sms["a"], sms["b"])
    rd, sd = c.stream(d)
    replay(g1, sd, "other masked stream", sms["a"], sms["d"])
    ru, su = c.stream(None)
    replay(g1, su, "unmasked stream", sms["a"], full)
    # captured unmasked, replayed on a masked stream
    rf, sf = c.stream(None)
    with c.guard("capture on unmasked stream"):
        g2 = capture(sf)
    replay(g2, sd, "captured unmasked, replayed on masked stream", full, sms["d"])
    verdict = classify_replays(rows)
    for r in rows:  # keep the file small: counts and flags instead of id lists
        probed, cap, cur = r.pop("probed"), r.pop("capture_sms"), r.pop("stream_sms")
        r["equals_capture_mask"], r["equals_stream_mask"] = probed == cap, probed == cur
        r["probed_sms_hex"] = sm_mask_hex(probed)
    return {"verdict": verdict, "replays": rows}


def remask(c: Ctx, reps: int = 20000) -> dict:
    """Host cost of one mask change (ctypes call included) and of a launch right after."""
    torch = c.torch
    raw, s = c.stream(None)
    masks = [mask_of(set(range(8)), c.total_tpcs), mask_of(set(range(8, 66)), c.total_tpcs)]
    t0 = time.perf_counter_ns()
    for i in range(reps):
        c.lib.set_stream_mask(raw, masks[i & 1])
    per_call_us = (time.perf_counter_ns() - t0) / reps / 1e3
    x = torch.zeros(1024, device="cuda")
    out = {}
    for label, change in (("constant mask", False), ("mask changed before each launch", True)):
        with torch.cuda.stream(s):
            for _ in range(50):
                x.add_(1)
            torch.cuda.synchronize()
            samples = []
            for _ in range(5):
                t0 = time.perf_counter_ns()
                for i in range(2000):
                    if change:
                        c.lib.set_stream_mask(raw, masks[i & 1])
                    x.add_(1)
                s.synchronize()
                samples.append((time.perf_counter_ns() - t0) / 2000 / 1e3)
        out[label] = round(statistics.median(samples), 3)
    return {
        "set_stream_mask_call_us": round(per_call_us, 3),
        "launch_loop_us_per_launch": out,
        "method": f"host perf_counter over {reps} ctypes calls; 5 x 2000 tiny launches "
        "(x.add_ on 1024 floats) with and without a mask change before each, median per launch",
    }


PARTS = {"selftest": selftest, "graph": graph, "remask": remask}


def summary_lines(part: str, doc: dict) -> list[str]:
    if part == "selftest":
        mv = doc["tpc_map"]["verdict"]
        lines = [
            f"selftest: {'PASSED' if doc['passed'] else 'FAILED'}  ({doc['total_tpcs']} TPCs, "
            f"map ok={mv['ok']} identity={mv['identity_tpc_t_is_sms_2t_2t1']})"
        ]
        for m in doc["masks"]:
            lines.append(
                f"  mask {m['mask']:<10} tpcs {m['tpcs']:>2} bits>63 {m['uses_bits_above_63']!s:<5}"
                f" expected {m['sms_expected']:>3} probed {m['sms_probed']:>3} exact {m['exact']}"
            )
        p = doc["concurrent_pair"]
        lines.append(f"  concurrent pair {p['a_sms']}+{p['b_sms']} SMs disjoint={p['disjoint']}")
        return lines
    if part == "graph":
        lines = [f"graph under mask: replay honours the {doc['verdict']}"]
        lines += [
            f"  {r['replay']:<46} SMs {r['n_probed']:>3} = capture mask "
            f"{r['equals_capture_mask']!s:<5} = stream's mask {r['equals_stream_mask']}"
            for r in doc["replays"]
        ]
        return lines
    return [f"remask: {json.dumps(doc)}"]


TOOL = "calibrate.libsmctrl_check"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The checked arguments; ValueError (one line) for a bad --out or a file there that this
    tool did not write. Nothing touches the GPU here."""
    ap = ToolParser(prog=TOOL, description=__doc__.split("\n")[0])
    ap.add_argument("parts", nargs="+", choices=sorted(PARTS))
    ap.add_argument("--libsmctrl", default=None, help="libsmctrl.so (else $LIBSMCTRL_PATH)")
    ap.add_argument("--out", type=Path, default=None, help="write <part>.json here")
    ap.add_argument("--watchdog-s", type=positive_seconds, default=20.0)
    a = ap.parse_args(argv)
    if a.out is not None:
        a.out = require_out_folder(a.out, "--out")
        check_outputs(a.out, {f"{p}.json": own_json for p in a.parts}, TOOL)
    return a


def own_json(path: Path) -> bool:
    return is_own_json(path, TOOL)


def main(argv: list[str] | None = None) -> int:
    """Run the parts; 0 when all ran (and the self-test passed), 1 when it failed, 2 when the
    library cannot mask streams on this driver. Bad input and a machine without a GPU or
    libsmctrl raise ValueError (one line, exit 2 through `run_tool`)."""
    a = parse_args(argv)
    lib_path = require_libsmctrl(a.libsmctrl)
    require_gpu(TOOL)
    from bulletsim.gpu.libsmctrl import LibsmctrlUnavailable

    try:
        c = Ctx(lib_path, a.watchdog_s)
    except LibsmctrlUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rc = 0
    for part in a.parts:
        doc = PARTS[part](c)
        doc["driver_version"] = c.lib.driver_version
        doc["libsmctrl_manifest"] = c.lib.manifest
        if a.out:
            write_json_atomic(a.out / f"{part}.json", TOOL, doc)
        print("\n".join(summary_lines(part, doc)), flush=True)
        if part == "selftest" and not doc["passed"]:
            rc = 1
    return rc


if __name__ == "__main__":
    run_tool(lambda: sys.exit(main()))
