"""artifact_verify through real ansible-playbook runs: the module, and the role stopping a stage
before managed hosts are touched. Real clamscan, real gpg, downloads from a local http.server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from tests.fixtures.artifact_fixtures import build_deb, build_gpg_world, write_eicar, write_ndb
from tests.helpers import ansible_playbook, base_env

PLAYBOOKS = Path(__file__).parent / "playbooks" / "artifact"

pytestmark = pytest.mark.skipif(not (shutil.which("clamscan") and shutil.which("gpg")),
                                reason="needs clamscan and gpg")


@pytest.fixture(scope="module")
def gpg_world(tmp_path_factory):
    return build_gpg_world(tmp_path_factory.mktemp("gpgpb"))


@pytest.fixture
def http_root(tmp_path):
    """A python http.server on 127.0.0.1 serving a temp directory; yields (root, base_url)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_json(playbook: Path, extra: dict, tmp_path: Path, *args: str, check: bool = False):
    vars_file = tmp_path / "extra-vars.json"
    vars_file.write_text(json.dumps(extra))
    env = base_env(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOCALHOST_WARNING="False",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    proc = ansible_playbook(playbook, "-e", f"@{vars_file}", *args, check=check, env=env)
    return proc, json.loads(proc.stdout)


def task_result(out: dict, task_name: str, host: str = "localhost") -> dict:
    for play in out["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].split(" : ")[-1] == task_name:
                return task["hosts"][host]
    raise KeyError(task_name)


# -------------------------------------------------------------------------------- the module

def test_module_pass_in_check_and_normal_mode(tmp_path, gpg_world):
    db = tmp_path / "db"
    write_ndb(db)
    art = gpg_world["artifact"]
    args = {"verify_args": {
        "artifacts": [{"path": str(art), "size": art.stat().st_size,
                       "digest": "sha256:" + hashlib.sha256(art.read_bytes()).hexdigest(),
                       "signature": str(gpg_world["sig_good"])}],
        "gpg_keys": [str(k) for k in gpg_world["keys"]],
        "gpg_fingerprints": [gpg_world["good"]],
        "clamav": {"database": str(db)}}}
    for mode in ([], ["--check"]):
        proc, out = run_json(PLAYBOOKS / "module.yml", args, tmp_path, *mode)
        assert proc.returncode == 0, proc.stdout[-3000:]
        res = task_result(out, "Verify")
        assert res["changed"] is False and res["passed"] is True
        checks = res["artifacts"][0]["checks"]
        assert {k: v["verdict"] for k, v in checks.items()} == {
            "exists": "pass", "size": "pass", "digest": "pass", "checksum_file": "not_requested",
            "signature": "pass", "malware_scan": "pass"}
        assert res["scanner"]["database"]["version"].startswith("custom-sha256:")
        assert res["gpg"]["version"].startswith("gpg (GnuPG)")


def test_module_fails_naming_every_failing_artifact_with_evidence(tmp_path):
    db = tmp_path / "db"
    write_ndb(db)
    eicar = write_eicar(tmp_path / "tool.exe")
    good = tmp_path / "good.txt"
    good.write_text("fine\n")
    args = {"verify_args": {
        "artifacts": [{"path": str(eicar)},
                      {"path": str(good), "digest": "sha256:" + "0" * 64},
                      {"path": str(good), "name": "ok.txt"}],
        "clamav": {"database": str(db)}}}
    proc, out = run_json(PLAYBOOKS / "module.yml", args, tmp_path)
    assert proc.returncode != 0
    res = task_result(out, "Verify")
    assert res["failed"] is True and res["changed"] is False
    assert "2 of 3 artifacts failed" in res["msg"]
    assert "tool.exe" in res["msg"] and "malware found" in res["msg"]
    assert "good.txt" in res["msg"] and "sha256 mismatch" in res["msg"]
    assert "ok.txt" not in res["msg"]
    assert res["failed_artifacts"] == ["tool.exe", "good.txt"]
    assert res["artifacts"][2]["passed"] is True
    assert res["artifacts"][1]["digests"]["sha256"] == hashlib.sha256(b"fine\n").hexdigest()


def test_module_rejects_bad_option_values(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    args = {"verify_args": {"artifacts": [{"path": str(f), "digest": "md5:abc"}],
                            "gpg_fingerprints": ["DEADBEEF"], "clamav": {"enabled": False}}}
    proc, out = run_json(PLAYBOOKS / "module.yml", args, tmp_path)
    assert proc.returncode != 0
    msg = task_result(out, "Verify")["msg"]
    assert "artifacts[0].digest" in msg and "gpg_fingerprints" in msg


# ---------------------------------------------------------------------------------- the role

def stage_vars(tmp_path: Path, artifacts: list, gpg_world: dict, db: Path) -> dict:
    return {
        "artifact_verify_change_id": "CR-2025-042",
        "artifact_verify_base_dir": str(tmp_path / "store"),
        "artifact_verify_artifacts": artifacts,
        "artifact_verify_gpg_keys": [str(k) for k in gpg_world["keys"]],
        "artifact_verify_gpg_fingerprints": [gpg_world["good"]],
        "artifact_verify_clamav": {"database": str(db), "max_filesize": "10M", "max_scansize": "10M"},
        "install_dir": str(tmp_path / "installed"),
    }


def write_inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps({"all": {"hosts": {"localhost": {
                                           "ansible_connection": "local",
                                           "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
                                       "children": {"managed": {"hosts": {"managed1": {
                                           "ansible_connection": "local",
                                           "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}}}))
    (tmp_path / "installed").mkdir()
    return inv


def test_role_releases_verified_artifacts_with_hashed_record(tmp_path, gpg_world, http_root):
    db = tmp_path / "db"
    write_ndb(db)
    www, base = http_root
    art = gpg_world["artifact"]
    shutil.copy(art, www / art.name)
    shutil.copy(gpg_world["sig_good"], www / (art.name + ".asc"))
    local = build_deb(tmp_path, "agent", {"opt/agent/agent.conf": b"debian package bytes\n" * 100}, "xz")
    (www / "SHA256SUMS").write_text(
        f"{hashlib.sha256(art.read_bytes()).hexdigest()}  {art.name}\n"
        f"{hashlib.sha256(local.read_bytes()).hexdigest()}  agent.deb\n")
    artifacts = [
        {"name": art.name, "url": f"{base}/{art.name}",
         "digest": hashlib.sha256(art.read_bytes()).hexdigest(),
         "checksum_url": f"{base}/SHA256SUMS", "signature_url": f"{base}/{art.name}.asc"},
        {"name": "agent.deb", "src": str(local), "size": local.stat().st_size,
         "checksum_url": f"{base}/SHA256SUMS"},
    ]
    inv = write_inventory(tmp_path)
    proc, _out = run_json(PLAYBOOKS / "stage.yml", stage_vars(tmp_path, artifacts, gpg_world, db), tmp_path,
                          "-i", str(inv))
    assert proc.returncode == 0, proc.stdout[-4000:]
    verified = tmp_path / "store" / "verified" / "CR-2025-042"
    for name, src in ((art.name, art), ("agent.deb", local)):
        released = verified / name
        assert released.read_bytes() == src.read_bytes()
        assert stat.S_IMODE(released.stat().st_mode) == 0o600
        # stage 3 installed from the verified store
        assert (tmp_path / "installed" / f"managed1-{name}").read_bytes() == src.read_bytes()
    for sub in ("quarantine", "verified", "evidence"):
        assert stat.S_IMODE((tmp_path / "store" / sub / "CR-2025-042").stat().st_mode) == 0o700
    record_path = verified / "verification-record.json"
    assert stat.S_IMODE(record_path.stat().st_mode) == 0o600
    check = subprocess.run(["sha256sum", "-c", "verification-record.json.sha256"], cwd=verified,
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    record = json.loads(record_path.read_text())
    assert record["kind"] == "artifacts" and record["version"] == 1 and record["host"] is None
    assert record["passed"] is True and record["reasons"] == [] and record["change_id"] == "CR-2025-042"
    assert record["verification"]["passed"] is True
    by_name = {a["name"]: a for a in record["verification"]["artifacts"]}
    assert by_name[art.name]["checks"]["signature"]["verdict"] == "pass"
    assert by_name[art.name]["checks"]["checksum_file"]["verdict"] == "pass"
    assert by_name["agent.deb"]["checks"]["malware_scan"]["verdict"] == "pass"
    assert {r["name"]: r["sha256"] for r in record["released"]} == {
        art.name: hashlib.sha256(art.read_bytes()).hexdigest(),
        "agent.deb": hashlib.sha256(local.read_bytes()).hexdigest()}
    assert record["verification"]["scanner"]["version"].startswith("ClamAV")
    assert record["sources"][0]["artifact"].startswith("http://127.0.0.1:")
    # tampering with the record is detected by its .sha256
    record_path.write_text(record_path.read_text().replace('"passed"', '"PASSED"', 1))
    tampered = subprocess.run(["sha256sum", "-c", "verification-record.json.sha256"], cwd=verified,
                              capture_output=True, text=True, check=False)
    assert tampered.returncode != 0


def test_role_failing_artifact_stops_before_managed_hosts_and_keeps_evidence(tmp_path, gpg_world):
    db = tmp_path / "db"
    write_ndb(db)
    eicar = write_eicar(tmp_path / "patch.bin")
    other = tmp_path / "app.tar.gz"
    shutil.copy(gpg_world["artifact"], other)
    artifacts = [
        {"name": "patch.bin", "src": str(eicar)},
        # signed by a key that is in the keyring but not pinned
        {"name": "app.tar.gz", "src": str(other), "signature": str(gpg_world["sig_other"])},
    ]
    inv = write_inventory(tmp_path)
    proc, out = run_json(PLAYBOOKS / "stage.yml", stage_vars(tmp_path, artifacts, gpg_world, db), tmp_path,
                         "-i", str(inv))
    assert proc.returncode != 0
    assert not list((tmp_path / "installed").iterdir()), "a managed host was touched"
    assert "managed1" not in json.dumps(out["stats"])
    store = tmp_path / "store"
    assert not list((store / "verified" / "CR-2025-042").iterdir())
    assert (store / "quarantine" / "CR-2025-042" / "patch.bin").read_bytes() == eicar.read_bytes()
    records = sorted((store / "evidence" / "CR-2025-042").glob("verification-record-failed-*.json"))
    assert len(records) == 1
    assert stat.S_IMODE(records[0].stat().st_mode) == 0o600
    check = subprocess.run(["sha256sum", "-c", records[0].name + ".sha256"], cwd=records[0].parent,
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    record = json.loads(records[0].read_text())
    assert record["passed"] is False and record["kind"] == "artifacts"
    assert "malware found" in record["reasons"][0] and record["failed_task"] in record["reasons"][0]
    assert sorted(record["verification"]["failed_artifacts"]) == ["app.tar.gz", "patch.bin"]
    assert "malware found" in record["message"] and "not a pinned fingerprint" in record["message"]
    fail = task_result(out, "Stop before any managed host is touched")
    assert "patch.bin" in fail["msg"] and "app.tar.gz" in fail["msg"], fail["msg"]


def test_role_download_with_wrong_checksum_stops_and_keeps_evidence(tmp_path, gpg_world, http_root):
    db = tmp_path / "db"
    write_ndb(db)
    www, base = http_root
    (www / "pkg.tar.gz").write_bytes(b"the real bytes\n")
    artifacts = [{"name": "pkg.tar.gz", "url": f"{base}/pkg.tar.gz", "digest": "sha256:" + "1" * 64}]
    inv = write_inventory(tmp_path)
    proc, _out = run_json(PLAYBOOKS / "stage.yml", stage_vars(tmp_path, artifacts, gpg_world, db), tmp_path,
                          "-i", str(inv))
    assert proc.returncode != 0
    assert not list((tmp_path / "installed").iterdir())
    records = list((tmp_path / "store" / "evidence" / "CR-2025-042").glob("verification-record-failed-*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["passed"] is False and "checksum" in record["message"].lower()
    assert "checksum" in record["reasons"][0].lower()
    assert "Download the artifact" in record["failed_task"]
