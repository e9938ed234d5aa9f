"""`results/large-models/ingest.sh` never overwrites a file it did not write: a file in
device/ is replaced only when its record (INGESTED.sha256) lists it with its current content;
else one error line, exit 2, nothing copied. Its own files are replaced on a re-ingest."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SH = ROOT / "results" / "large-models" / "ingest.sh"
DEV = Path("results/large-models/device")
SAMPLE = {"key": "op/prefill/qkv/sms8/tokens64", "kind": "op", "phase": "prefill", "op": "qkv",
          "num_sms": 8, "time_s": 1e-4, "split": "train", "status": "ok"}  # fmt: skip


def make_round(d: Path) -> Path:
    """A device round's output: two host files and one TP-2 sweep (samples, meta, report)."""
    d.mkdir(parents=True)
    (d / "topo.txt").write_text("GPU0 X NV18\n")
    (d / "smi.txt").write_text("H200\n")
    (d / "tp2-quick.log").write_text("profile: ...\n")
    members = {
        "samples.jsonl": json.dumps(SAMPLE) + "\n",
        "meta.json": json.dumps({"gpu": "h200", "model": "llama-3.1-70b", "tp": 2}),
        "report.md": "# report\n",
    }
    with tarfile.open(d / "tp2-quick.tgz", "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"tp2-quick/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return d


def ingest(tree: Path, src: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [shutil.which("sh") or "sh", str(SH), str(src), "R9"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )


def snapshot(tree: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()}


def refused(r: subprocess.CompletedProcess, path: Path) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: {path} exists and was not written by ingest.sh"), lines


def test_ingest_replaces_its_own_files_and_refuses_an_edited_one(tmp_path):
    src, tree = make_round(tmp_path / "round"), tmp_path / "tree"
    tree.mkdir()
    r = ingest(tree, src)
    assert r.returncode == 0, r.stderr
    dev = tree / DEV
    written = ["R9-smi.txt", "R9-topo.txt", "tp2/R9-calibrate.log", "tp2/meta.json",
               "tp2/report.md", "tp2/samples.parquet"]  # fmt: skip
    record = (dev / "INGESTED.sha256").read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in record] == written
    assert not list(dev.rglob(".*"))  # no temporary files left
    assert ingest(tree, src).returncode == 0  # its own files: replaced
    assert (dev / "INGESTED.sha256").read_text().splitlines() == record
    (dev / "tp2" / "report.md").write_text("# my notes on this run\n")
    before = snapshot(tree)
    refused(ingest(tree, src), DEV / "tp2" / "report.md")
    assert snapshot(tree) == before


def test_ingest_into_a_tree_with_files_it_did_not_write_copies_nothing(tmp_path):
    src, tree = make_round(tmp_path / "round"), tmp_path / "tree"
    (tree / DEV).mkdir(parents=True)
    (tree / DEV / "R9-topo.txt").write_text("the topology I wrote down\n")
    before = snapshot(tree)
    refused(ingest(tree, src), DEV / "R9-topo.txt")
    assert snapshot(tree) == before and not (tree / DEV / "tp2").exists()
