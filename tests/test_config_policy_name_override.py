"""A policy name on the command line (`--policy chunked-512`) overrides a config file's
`[chunked] chunk_size` as every flag does (README: "a config file's value is overridden by
flags"); a file whose own name and section disagree, or a `--set` that disagrees with the
name, are still refused in one line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bulletsim.cli import app
from bulletsim.config import load_config

runner = CliRunner()


def test_a_name_on_the_command_line_overrides_the_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[chunked]\nchunk_size = 1024\nvariant = "prefill-first"\n')
    cfg = load_config(f, {"policy": "chunked-512"})
    assert cfg.params().chunk_size == 512
    assert cfg.params().variant == "prefill-first"  # the file's other values stay
    assert load_config(f, {"policy": "chunked"}).params().chunk_size == 1024


def test_run_with_the_file_and_a_name_runs_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text("[chunked]\nchunk_size = 1024\n")
    res = runner.invoke(app, ["run", "--config", "c.toml", "--policy", "chunked-512",
                              "--trace", "alpaca", "-n", "10", "-q", "--no-write"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "chunked-512 on " in res.output


@pytest.mark.parametrize(
    "text, overrides",
    [
        ('policy = "chunked-512"\n[chunked]\nchunk_size = 1024\n', {}),
        ("", {"policy": "chunked-512", "chunked": {"chunk_size": 1024}}),
    ],
)
def test_one_source_giving_two_values_is_refused(tmp_path, text, overrides):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ValueError, match="chunked-512 conflicts with chunked.chunk_size=1024"):
        load_config(f, overrides)
