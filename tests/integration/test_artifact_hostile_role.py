"""Issue 15 through the role: a FIFO source, a package with malware, conflicting checksum entries.

Each run stops in stage 2.2 before the managed host is touched and keeps a failed record.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.artifact_fixtures import EICAR, build_deb, write_ndb, zip_bytes
from tests.helpers import ansible_playbook, base_env
from tests.integration.test_artifact_verify_playbook import PLAYBOOKS, task_result, write_inventory

pytestmark = pytest.mark.skipif(not (shutil.which("clamscan") and shutil.which("dpkg-deb")),
                                reason="needs clamscan and dpkg-deb")


def run_stage(tmp_path: Path, artifacts: list, timeout: int = 240):
    db = tmp_path / "db"
    write_ndb(db)
    extra = {"artifact_verify_change_id": "CR-2025-099", "artifact_verify_base_dir": str(tmp_path / "store"),
             "artifact_verify_artifacts": artifacts,
             "artifact_verify_clamav": {"database": str(db), "unpack_tmpdir": str(tmp_path)},
             "install_dir": str(tmp_path / "installed")}
    vars_file = tmp_path / "extra-vars.json"
    vars_file.write_text(json.dumps(extra))
    inv = write_inventory(tmp_path)
    env = base_env(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOCALHOST_WARNING="False",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    try:
        proc = ansible_playbook(PLAYBOOKS / "stage.yml", "-e", f"@{vars_file}", "-i", str(inv),
                                check=False, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the role did not finish within {timeout} s (blocked on a FIFO?)")
    out = json.loads(proc.stdout)
    assert proc.returncode != 0
    assert not list((tmp_path / "installed").iterdir()), "a managed host was touched"
    records = sorted((tmp_path / "store" / "evidence" / "CR-2025-099").glob("verification-record-failed-*.json"))
    assert len(records) == 1
    return out, json.loads(records[0].read_text())


def test_role_refuses_a_fifo_checksum_file_without_blocking(tmp_path):
    art = tmp_path / "app.bin"
    art.write_bytes(b"app\n")
    fifo = tmp_path / "SHA256SUMS"
    os.mkfifo(fifo)
    _out, record = run_stage(tmp_path, [{"name": "app.bin", "src": str(art), "checksum_file": str(fifo)}])
    assert f"{fifo} is not a regular file" in record["message"], record["message"]
    assert "Refuse local sources" in record["failed_task"]


def test_role_stops_on_malware_inside_a_deb(tmp_path):
    deb = build_deb(tmp_path, "agent", {"opt/agent/plugins.zip": zip_bytes({"x.com": EICAR})}, "zstd")
    out, record = run_stage(tmp_path, [{"name": "agent.deb", "src": str(deb)}])
    assert "malware found" in record["message"] and "opt/agent/plugins.zip" in record["message"]
    check = record["verification"]["artifacts"][0]["checks"]["malware_scan"]
    assert check["verdict"] == "fail" and check["unpacked"]["members"] > 0
    assert "agent.deb" in task_result(out, "Stop before any managed host is touched")["msg"]
    assert [p for p in tmp_path.iterdir() if p.name.startswith("itsop-unpack-")] == []


def test_role_stops_on_conflicting_checksum_entries(tmp_path):
    art = tmp_path / "a.bin"
    art.write_bytes(b"payload\n")
    sums = tmp_path / "SHA256SUMS"
    good = hashlib.sha256(art.read_bytes()).hexdigest()
    sums.write_text(f"{good}  a.bin\n{'0' * 64}  ./a.bin\n")
    _out, record = run_stage(tmp_path, [{"name": "a.bin", "src": str(art), "checksum_file": str(sums)}])
    assert "conflicting sha256 digests" in record["message"], record["message"]
