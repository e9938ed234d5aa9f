"""native/build_libsmctrl.sh: argument checks (one line, exit 2) and a build that never writes
into the checkout, with a stand-in checkout and a cc-backed stand-in nvcc (CPU only)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "native" / "build_libsmctrl.sh"
FAKE_SRC = Path(__file__).parent / "fixtures" / "libsmctrl_fake"
CC = shutil.which("cc") or shutil.which("gcc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler")


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60
    )


def one_line_error(r: subprocess.CompletedProcess, text: str) -> None:
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], r.stderr


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    src = tmp_path / "libsmctrl"
    shutil.copytree(FAKE_SRC, src)
    return src


@pytest.fixture
def toolchain(tmp_path: Path) -> dict:
    """A CUDA_HOME with a cuda.h and a link stub, and an `nvcc` that is cc underneath."""
    if CC is None:
        pytest.skip("no C compiler")
    home = tmp_path / "cuda"
    (home / "include").mkdir(parents=True)
    (home / "include" / "cuda.h").write_text("/* stand-in */\n")
    (home / "lib64" / "stubs").mkdir(parents=True)
    stub = home / "stub.c"
    stub.write_text("int cuDriverGetVersion(int *v) { *v = 13000; return 0; }\n")
    subprocess.run(
        [CC, "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o",
         str(home / "lib64" / "stubs" / "libcuda.so"), str(stub)],
        check=True,
    )  # fmt: skip
    bindir = tmp_path / "bin"
    bindir.mkdir()
    nvcc = bindir / "nvcc"
    nvcc.write_text(
        "#!/bin/bash\n"
        'if [ "$1" = --version ]; then echo "Cuda compilation tools, release 13.0, V13.0.88";'
        " exit 0; fi\n"  # every argument kept whole: paths with spaces must survive
        'args=(); for a in "$@"; do [ "$a" = -Xcompiler ] || args+=("$a"); done\n'
        f'exec {CC} "${{args[@]}}"\n'
    )
    nvcc.chmod(0o755)
    return {**os.environ, "NVCC": str(nvcc), "CUDA_HOME": str(home)}


def snapshot(d: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(d.rglob("*"))}


def test_no_arguments():
    one_line_error(run(), "no libsmctrl checkout given")


def test_unknown_option(checkout):
    one_line_error(run(str(checkout), "--bogus"), "unknown option --bogus; valid: --out DIR")


def test_two_paths(checkout, tmp_path):
    one_line_error(run(str(checkout), str(tmp_path)), "one checkout path expected")


def test_missing_path(tmp_path):
    one_line_error(run(str(tmp_path / "nope")), "libsmctrl checkout not found")


def test_not_a_checkout(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "libsmctrl.h").write_text("")
    one_line_error(run(str(tmp_path / "other")), "not a libsmctrl checkout (no libsmctrl.c)")


def test_no_nvcc(checkout, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NVCC", "CUDA_HOME")}
    bindir = tmp_path / "onlybash"
    bindir.mkdir()
    for tool in ("dirname", "mkdir", "grep", "realpath"):  # what the script needs before nvcc
        if shutil.which(tool):
            os.symlink(shutil.which(tool), bindir / tool)
    env["PATH"] = str(bindir)
    r = subprocess.run(
        [shutil.which("bash"), str(SCRIPT), str(checkout), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    one_line_error(r, "nvcc not found")


def test_out_inside_checkout_is_refused(checkout, toolchain):
    before = snapshot(checkout)
    one_line_error(run(str(checkout), "--out", str(checkout / "build"), env=toolchain), "inside")
    assert snapshot(checkout) == before  # not even the folder was made


def test_foreign_library_is_not_overwritten(checkout, toolchain, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "libsmctrl.so").write_text("someone else's")
    one_line_error(run(str(checkout), "--out", str(out), env=toolchain), "not built by this script")
    assert (out / "libsmctrl.so").read_text() == "someone else's"


@needs_cc
def test_build_writes_only_the_output(checkout, toolchain, tmp_path):
    before = snapshot(checkout)
    out = tmp_path / "out"
    r = run(str(checkout), "--out", str(out), env=toolchain)
    assert r.returncode == 0, r.stderr + r.stdout
    assert snapshot(checkout) == before  # the user's checkout is untouched
    man = json.loads((out / "libsmctrl.json").read_text())
    assert man["cuda_toolkit"] == "13.0" and man["has_stream_mask_ext"] is True
    # only the x86-64 branch of the version switch counts on this machine
    assert man["stream_mask_driver_versions"] == ([12080, 13000] if os.uname().machine ==
                                                   "x86_64" else [12060])  # fmt: skip
    assert (out / "libsmctrl.so").is_file()
    # a rebuild over our own output is allowed (the manifest marks it ours)
    assert run(str(checkout), "--out", str(out), env=toolchain).returncode == 0


# -- issue 16, new-user findings: user files, CUDA_HOME, --out, clean-up, the printed export --
@pytest.mark.parametrize(
    "name, text, needle",
    [
        ("build.log", "my own notes\n", "build.log exists and was not written by this script"),
        ("libsmctrl.json", '{"mine": 1}\n', "libsmctrl.json exists and was not built by this"),
        ("libsmctrl.json", '{"built_by": "me"}\n', "libsmctrl.json exists and was not built"),
    ],
)
def test_users_files_in_out_are_never_replaced(checkout, toolchain, tmp_path, name, text, needle):
    out = tmp_path / "u1"
    out.mkdir()
    (out / name).write_text(text)
    before = snapshot(out)
    one_line_error(run(str(checkout), "--out", str(out), env=toolchain), needle)
    assert snapshot(out) == before


@needs_cc
def test_a_library_swapped_in_after_our_build_is_not_ours(checkout, toolchain, tmp_path):
    out = tmp_path / "out"
    assert run(str(checkout), "--out", str(out), env=toolchain).returncode == 0
    assert (out / "build.log").read_text().startswith("# bulletsim native/build_libsmctrl.sh\n")
    (out / "libsmctrl.so").write_bytes(b"the user's own build")
    r = run(str(checkout), "--out", str(out), env=toolchain)
    one_line_error(r, "libsmctrl.so exists and was not built by this script")
    assert (out / "libsmctrl.so").read_bytes() == b"the user's own build"


@pytest.mark.parametrize("args", [["--out="], ["--out", ""]], ids=["equals", "separate"])
def test_empty_out_is_an_error(checkout, toolchain, args):
    one_line_error(run(str(checkout), *args, env=toolchain), "--out is empty")


@pytest.mark.parametrize(
    "home, needle",
    [("/nonexistent-cuda-home", "does not exist"), ("@empty", "has no include/cuda.h")],
)
def test_a_bad_cuda_home_is_an_error_not_a_fallback(checkout, toolchain, tmp_path, home, needle):
    if home == "@empty":
        home = str(tmp_path / "empty-home")
        Path(home).mkdir()
    env = {**toolchain, "CUDA_HOME": home}
    out = tmp_path / "new" / "deeper"
    one_line_error(run(str(checkout), "--out", str(out), env=env), f"CUDA_HOME={home} {needle}")
    assert not (tmp_path / "new").exists()  # nothing created before the checks pass


@needs_cc
def test_spaces_and_quotes_build_and_the_export_line_is_quoted(checkout, toolchain, tmp_path):
    spaced = tmp_path / "cu da"
    shutil.copytree(toolchain["CUDA_HOME"], spaced)
    out = tmp_path / "o u't"
    r = run(str(checkout), "--out", str(out), env={**toolchain, "CUDA_HOME": str(spaced)})
    assert r.returncode == 0, r.stderr + r.stdout
    man = json.loads((out / "libsmctrl.json").read_text())
    assert man["cuda_home"] == str(spaced) and str(spaced / "lib64" / "stubs") in man["link"]
    line = next(x for x in r.stdout.splitlines() if "export LIBSMCTRL_PATH=" in x)
    cmd = line.split("use it: ", 1)[1] + '; printf %s "$LIBSMCTRL_PATH"'
    got = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True).stdout
    assert got == str(out / "libsmctrl.so")


@needs_cc
def test_a_failed_build_removes_only_the_folders_it_created(checkout, toolchain, tmp_path):
    (checkout / "libsmctrl.c").write_text(
        (checkout / "libsmctrl.c").read_text() + "\nthis is not C;\n"
    )
    keep = tmp_path / "existing"
    keep.mkdir()
    out = keep / "new" / "out"
    r = run(str(checkout), "--out", str(out), env=toolchain)
    one_line_error(r, "failed; see")
    # the compile log stays (the message points to it); nothing else was written
    assert sorted(p.name for p in out.iterdir()) == ["build.log"]
    # a failure before the compiler runs leaves nothing behind, not even the folders
    env = {**toolchain, "NVCC": str(tmp_path / "no-nvcc")}
    out2 = keep / "other" / "out"
    one_line_error(run(str(checkout), "--out", str(out2), env=env), "nvcc not found")
    assert sorted(p.name for p in keep.iterdir()) == ["new"]
