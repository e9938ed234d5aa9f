"""`python -m bulletsim.norm_latency` (issue 13, new-user findings): a search whose bracket does
not hold the capacity says "> hi" or "< lo" and never reports the bound as a capacity; bad
input (a missing traces folder included) is one line and exit code 2."""

from __future__ import annotations

import math
from concurrent.futures import Future

import pytest

from bulletsim.norm_latency import ABOVE, BELOW, capacity_table, main, search


class FakePool:
    """Prices a point by a known normalized-latency curve instead of simulating it."""

    def __init__(self, ms_at):
        self.ms_at, self.rates = ms_at, []

    def submit(self, fn, base, policy, seed, rate, n, trace):
        self.rates.append(rate)
        f: Future = Future()
        f.set_result({"rate_req_s": rate, "norm_latency_ms": self.ms_at(rate)})
        return f


def run_search(ms_at, lo=1.0, hi=16.0):
    return search({}, "chunked", 0, 100.0, lo, hi, 0.01, 10, "sharegpt", FakePool(ms_at))


def test_search_brackets_a_capacity_inside_and_flags_both_ends():
    cap, points, bracket = run_search(lambda r: 10.0 * r)  # crosses 100 ms at 10 req/s
    assert bracket == "" and cap == pytest.approx(10.0, rel=0.011) and cap <= 10.0
    cap, points, bracket = run_search(lambda r: 1.0)  # within the limit everywhere
    assert (cap, bracket, len(points)) == (16.0, ABOVE, 2)
    cap, points, bracket = run_search(lambda r: 1e4)  # over it everywhere
    assert (cap, bracket, len(points)) == (1.0, BELOW, 1)


def test_a_bound_is_never_a_capacity_mean_or_ratio():
    caps = {"bullet": [16.0, 16.0, 12.0], "chunked": [8.0, 9.0, 8.5], "chunked-8192": [1.0] * 3}
    marks = {"bullet": [ABOVE, ABOVE, ""], "chunked": ["", "", ""], "chunked-8192": [BELOW] * 3}
    rows = {r["policy"]: r for r in capacity_table(caps, 0.01, marks)}
    assert math.isnan(rows["bullet"]["capacity_req_s"]) and "ratio" not in rows["bullet"]
    assert rows["bullet"]["bracket"] == "> hi for 2/3 seeds"
    assert rows["bullet"]["seeds"] == ["> 16", "> 16", "12"]
    assert rows["chunked-8192"]["bracket"] == "< lo for 3/3 seeds"
    assert rows["chunked"]["capacity_req_s"] == pytest.approx(8.5)
    # a bracketed Bullet is compared with the best *bracketed* other policy only
    caps["bullet"], marks["bullet"] = [12.0, 13.0, 12.5], ["", "", ""]
    rows = {r["policy"]: r for r in capacity_table(caps, 0.01, marks)}
    assert rows["bullet"]["vs"] == "chunked" and rows["bullet"]["ratio"] > 1


def test_the_tables_say_above_hi_for_a_system_still_within_the_limit(tmp_path, capsys):
    out = tmp_path / "nl"
    main(
        ["--gpu", "h200", "--model", "llama-3.1-8b", "--latency", "roofline", "--slo-ms", "100"]
        + ["--policy", "chunked", "--lo", "0.05", "--hi", "0.1", "-n", "20", "--seeds", "0"]
        + ["--workers", "1", "--out", str(out)]
    )
    md = (out / "capacity.md").read_text()
    assert "h200 / llama-3.1-8b tp=1, sharegpt" in md  # the degree used, not "None"
    assert "| chunked | > 0.1 (not bracketed: > hi for 1/1 seeds; raise --hi 0.1)" in md
    assert "| 0.10 |" not in md
    assert "chunked,,,," in (out / "capacity.csv").read_text()
    assert "warning: chunked: capacity not bracketed" in capsys.readouterr().err


BASE = ["--gpu", "h200", "--model", "llama-3.1-8b", "--slo-ms", "100", "--policy", "chunked"]


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--traces-dir", "/nonexistent-traces"], "traces_dir /nonexistent-traces is not a folder"),
        (["--lo", "0"], "need 0 < lo < hi"),
        (["--lo", "4", "--hi", "2"], "need 0 < lo < hi"),
        (["--slo-ms", "-5"], "--slo-ms -5"),
        (["--seeds", "0,x"], "--seeds '0,x'"),
        (["--rel-tol", "1.5"], "--rel-tol 1.5"),
        (["--policy", "magic"], "unknown policy 'magic'"),
        (["--tp", "16"], "valid: 1, 2, 4, 8"),
        (
            ["--latency", "profile", "--gpu", "a100", "--model", "llama-3.1-70b", "--tp", "4"],
            "tp 8",
        ),
        (["--hi", "x"], "invalid float value"),
        # a model that does not fit: the tp that fit, before any profile is looked up
        (
            ["--gpu", "h100", "--model", "llama-3.1-70b", "--tp", "1"],
            "tp that fit on h100: 2, 4, 8",
        ),
        (["--set", "moe.routing=zipf:0.6:-1", "--model", "qwen3-235b-a22b"], "moe.routing="),
        (["--out", "@file"], "exists and is not a folder"),
        (["--out", "@user"], "holds mine.txt"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, extra, needle):
    from bulletsim.cli_errors import run_script

    (tmp_path / "file").write_text("keep\n")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "mine.txt").write_text("keep\n")
    out = ["--out", str(tmp_path / "nl")]
    argv = BASE + out + [str(tmp_path / a[1:]) if a.startswith("@") else a for a in extra]
    with pytest.raises(SystemExit) as exc:
        run_script(lambda: main(argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert needle in err[0], err[0]
    assert not (tmp_path / "nl").exists()
    assert (tmp_path / "user" / "mine.txt").read_text() == "keep\n"


def test_startup_loads_no_heavy_module_before_run_script_is_in_charge():
    # Ctrl-C while pandas / scipy load must be "interrupted" (exit 130), not a traceback:
    # so importing the script loads neither (nor typer), and main() loads them under
    # run_script's handler
    import subprocess
    import sys

    code = (
        "import sys, bulletsim.norm_latency; "
        "print(sorted({'pandas', 'scipy', 'typer', 'numpy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
