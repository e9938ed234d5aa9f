"""The libsmctrl loader fails cleanly: no library, a foreign one, a driver whose stream layout
the build does not know, another CPU ABI; and the 128-bit mask arrives intact (CPU only)."""

from __future__ import annotations

import ctypes
import json
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from bulletsim.gpu.libsmctrl import (
    Libsmctrl,
    LibsmctrlUnavailable,
    check_driver,
    load_libsmctrl,
    tpc_mask_for,
)


def test_not_configured(monkeypatch):
    monkeypatch.delenv("LIBSMCTRL_PATH", raising=False)
    with pytest.raises(LibsmctrlUnavailable, match="not configured"):
        load_libsmctrl(None)


def test_env_path_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("LIBSMCTRL_PATH", str(tmp_path / "libsmctrl.so"))
    with pytest.raises(LibsmctrlUnavailable, match="not found"):
        load_libsmctrl()


def test_not_a_library(tmp_path):
    bogus = tmp_path / "libsmctrl.so"
    bogus.write_text("not an ELF file")
    with pytest.raises(LibsmctrlUnavailable, match="cannot load"):
        load_libsmctrl(bogus)


def test_library_without_the_symbol():
    import ctypes.util

    libm = ctypes.util.find_library("m")
    if libm is None:
        pytest.skip("no libm to stand in for a foreign library")
    with pytest.raises(LibsmctrlUnavailable, match="does not export"):
        load_libsmctrl(libm if "/" in libm else f"/lib/x86_64-linux-gnu/{libm}")


def test_tpc_masks():
    # a set bit disables a TPC: keep TPCs 2..4 of 8
    assert tpc_mask_for(2, 3, 8) == 0b11100011
    # 66 TPCs (H100/H200) need more than 64 bits
    m = tpc_mask_for(0, 33, 66)
    assert m >> 64 == 0b11 and m & ((1 << 33) - 1) == 0


# -- with a stand-in library (tests/fixtures/libsmctrl_fake, compiled here with cc) -----------
FAKE_SRC = Path(__file__).parent / "fixtures" / "libsmctrl_fake" / "libsmctrl.c"
CC = shutil.which("cc") or shutil.which("gcc")


@pytest.fixture
def fake_lib(tmp_path) -> Path:
    if CC is None or platform.machine() != "x86_64":
        pytest.skip("needs a C compiler on x86-64")
    so = tmp_path / "libsmctrl.so"
    subprocess.run([CC, "-shared", "-fPIC", "-o", str(so), str(FAKE_SRC)], check=True)
    return so


def test_driver_not_in_the_builtin_table(fake_lib, monkeypatch):
    monkeypatch.delenv("MASK_OFF", raising=False)
    with pytest.raises(LibsmctrlUnavailable, match=r"driver reports CUDA 13\.1 \(13010\).*13\.0"):
        load_libsmctrl(fake_lib, driver_version=13010)
    assert load_libsmctrl(fake_lib, driver_version=13000).driver_version == 13000


def test_manifest_versions_decide(fake_lib, monkeypatch):
    monkeypatch.delenv("MASK_OFF", raising=False)
    (fake_lib.parent / "libsmctrl.json").write_text(
        json.dumps({"stream_mask_driver_versions": [12080], "arch": "x86_64"})
    )
    with pytest.raises(LibsmctrlUnavailable, match="from its build manifest"):
        load_libsmctrl(fake_lib, driver_version=13000)
    monkeypatch.setenv("MASK_OFF", "16")  # libsmctrl's own offset search lifts the check
    assert load_libsmctrl(fake_lib, driver_version=13000).manifest["arch"] == "x86_64"


def test_manifest_of_another_arch(fake_lib):
    (fake_lib.parent / "libsmctrl.json").write_text(
        json.dumps({"stream_mask_driver_versions": [13000], "arch": "aarch64"})
    )
    with pytest.raises(LibsmctrlUnavailable, match="built for aarch64"):
        load_libsmctrl(fake_lib, driver_version=13000)


def test_unreadable_manifest(fake_lib):
    (fake_lib.parent / "libsmctrl.json").write_text("{not json")
    with pytest.raises(LibsmctrlUnavailable, match="unreadable build manifest"):
        load_libsmctrl(fake_lib, driver_version=13000)


def test_no_table_for_other_arches():
    with pytest.raises(LibsmctrlUnavailable, match="no known stream-mask offsets for aarch64"):
        check_driver(13000, {}, machine="aarch64")


def test_128_bit_mask_reaches_the_library_intact(fake_lib):
    lib = load_libsmctrl(fake_lib, driver_version=13000)
    assert lib.has_ext
    get_lo, get_hi = lib.lib.fake_last_lo, lib.lib.fake_last_hi
    get_lo.restype = get_hi.restype = ctypes.c_uint64
    mask = tpc_mask_for(10, 20, 66)  # disables TPCs 0-9 and 30-65: bits 64, 65 set
    lib.set_stream_mask(0, mask)
    assert (get_hi() << 64) | get_lo() == mask and get_hi() == 0b11
    with pytest.raises(ValueError, match="fit in 128 bits"):
        lib.set_stream_mask(0, 1 << 128)


def test_without_the_ext_call_masks_above_64_tpcs_are_refused(fake_lib):
    full = load_libsmctrl(fake_lib, driver_version=13000)
    legacy = Libsmctrl(full.lib, full.path, has_ext=False, driver_version=13000)
    with pytest.raises(LibsmctrlUnavailable, match="needed for > 64 TPCs"):
        legacy.set_stream_mask(0, 1 << 65)
