"""The libsmctrl loader fails cleanly when the library is absent (CPU only)."""

from __future__ import annotations

import pytest

from bulletsim.gpu.libsmctrl import LibsmctrlUnavailable, load_libsmctrl, tpc_mask_for


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
