"""`bulletsim traces ...` through typer's CliRunner, and downloads without real network."""

from __future__ import annotations

import urllib.error

import pytest
import typer
from typer.testing import CliRunner

from bulletsim.workload import download as download_module
from bulletsim.workload.catalog import TRACES
from bulletsim.workload.cli import register
from bulletsim.workload.download import download_file, download_traces


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """A stand-in for the bulletsim CLI."""

    register(app)
    return app


@pytest.fixture(autouse=True)
def _no_user_files(monkeypatch, tmp_path):
    monkeypatch.setenv("BULLETSIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BULLETSIM_TRACES_DIR", raising=False)
    monkeypatch.delenv("BULLETSIM_TRACES_MIRROR", raising=False)


def test_list(app, shared_traces_dir, tmp_path):
    result = CliRunner().invoke(app, ["traces", "list", "--traces-dir", str(shared_traces_dir)])
    assert result.exit_code == 0, result.output
    for name in TRACES:
        assert f"\n{name} " in "\n" + result.output
    assert "present" in result.output and "raw.githubusercontent.com/Azure" in result.output
    result = CliRunner().invoke(app, ["traces", "list"])
    assert "missing" in result.output and "embedded: splitwise-conv.json" in result.output


def test_download_from_a_file_mirror(app, shared_traces_dir, tmp_path):
    args = ["traces", "download", "splitwise-code", "arxiv-long", "--dest", str(tmp_path / "d")]
    result = CliRunner().invoke(app, [*args, "--mirror", shared_traces_dir.as_uri()])
    assert result.exit_code == 0, result.output
    assert result.output.count("downloaded") == 2
    assert (tmp_path / "d" / "AzureLLMInferenceTrace_code.csv").stat().st_size == 320_117
    again = CliRunner().invoke(app, [*args, "--mirror", shared_traces_dir.as_uri()])
    assert again.output.count("present") == 2


def test_download_defaults_to_the_cache(shared_traces_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("BULLETSIM_TRACES_MIRROR", shared_traces_dir.as_uri())
    fetched = download_traces(["sharegpt"], tmp_path / "cache")
    status = {f.file: f.status for f in fetched}
    assert status["ShareGPT_V3_unfiltered_cleaned_split.json"] == "missing"  # not on the mirror
    assert status["sharegpt_v3_random1000_first_turn_tokens.csv"] == "downloaded"


def test_download_checks_sha256_and_leaves_nothing(shared_traces_dir, tmp_path):
    url = (shared_traces_dir / "AzureLLMInferenceTrace_code.csv").as_uri()
    target = tmp_path / "x.csv"
    with pytest.raises(ValueError, match="does not match the pinned"):
        download_file(url, target, "0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_offline_is_a_one_line_error(app, tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download_module.urllib.request, "urlopen", offline)
    result = CliRunner().invoke(app, ["traces", "download", "arxiv", "--dest", str(tmp_path)])
    assert result.exit_code == 1
    assert "offline?" in result.output and len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_unknown_trace_name(app, tmp_path):
    result = CliRunner().invoke(app, ["traces", "download", "nope", "--dest", str(tmp_path)])
    assert result.exit_code == 2 and "valid: splitwise" in result.output


def test_build_defaults(app, shared_traces_dir, tmp_path):
    args = ["traces", "build-defaults", "--from", str(shared_traces_dir), "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("wrote") == 7
    result = CliRunner().invoke(app, ["traces", "build-defaults", "--from", str(tmp_path / "no")])
    assert result.exit_code == 2 and "get them with `bulletsim traces download`" in result.output
