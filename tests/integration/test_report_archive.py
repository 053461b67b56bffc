"""Stage 6 end to end: a real change driven through sopctl (stand-in stage playbooks run by
ansible-runner, real signed approvals, a real refusal), closed by the IT manager; the close hook
writes the reports and the signed archive. Then the report content, ``sopctl audit verify
ARCHIVE`` and every way of tampering with the archive, and planted secrets.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.fixtures.sopctl.world import World

CID = "CHG-2026-9601"
VAULT_SECRET = "S3cr3t-Vault-Planted-91x"
ENV_SECRET = "Env-Secret-Planted-77q"
SECRETS = (VAULT_SECRET, ENV_SECRET)
SECRET_ENV = {"SOPCTL_TEST_API_TOKEN": ENV_SECRET, "DB_PASSWORD": ENV_SECRET}


def ok(proc):
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def drive_change(tmp: Path, cid: str = CID) -> World:
    """Submit, run and approve a change through every gate until it is closed (close hook included).

    Secrets are planted in an inventory variable (vault_db_password) and in the environment of
    every sopctl process; the requester also tries to approve its own plan (SoD-1 refusal).
    """
    inv = {"all": {"children": {"staging": {"hosts": {"stg-local": {}}},
                                "production": {"hosts": {"prd-local-1": {}, "prd-local-2": {}}}},
                   "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            "sopctl_test_marker": str(tmp / "marker"), "vault_db_password": VAULT_SECRET}}}
    world = World(tmp, inventory=inv)
    from sopctl.changelog import chain

    chain().write_keypair(str(tmp / "audit.key"), str(tmp / "audit.pub"))  # checkpoints signed
    cfg = yaml.safe_load((world.home / "config.yml").read_text())
    (world.home / "config.yml").write_text(yaml.safe_dump(dict(cfg, audit_signing_key=str(tmp / "audit.key"))))
    ok(world.sopctl("budi", "submit", str(world.cr(cid)), env=SECRET_ENV))
    ok(world.sopctl("eko", "run", cid, env=SECRET_ENV))
    assert world.sopctl("budi", "approve", cid, "--gate", "plan").returncode == 3  # SoD-1, recorded
    for person, comment in (("sari", "plan ok"), ("dewi", "downtime 22:00 ok"), ("agus", "risk medium")):
        ok(world.sopctl(person, "approve", cid, "--gate", "plan", "--comment", comment, env=SECRET_ENV))
    ok(world.sopctl("eko", "run", cid, env=SECRET_ENV))
    for person in ("rina", "agus", "dewi"):
        ok(world.sopctl(person, "approve", cid, "--gate", "signoff", "--comment", "tests pass", env=SECRET_ENV))
    ok(world.sopctl("eko", "run", cid, env=SECRET_ENV))
    ok(world.sopctl("sari", "approve", cid, "--gate", "close", "--comment", "closed", env=SECRET_ENV))
    out = ok(world.sopctl("eko", "run", cid, env=SECRET_ENV)).stdout
    assert "archive" in out and f"{cid}: closed" in out
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return drive_change(tmp_path_factory.mktemp("stage6"))


def change_dir(world):
    return world.home / "changes" / CID


def the_archive(world) -> Path:
    found = sorted((change_dir(world) / "archive").glob(f"{CID}-*.tar.gz"))
    assert len(found) == 1, found
    return found[0]


def pub(world) -> Path:
    return world.home / "keys" / "controller.pub"


def verify(world, archive: Path, *extra: str):
    proc = world.sopctl(None, "audit", "verify", str(archive), "--public-key", str(pub(world)), "--json", *extra)
    return proc, json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None


def read_members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def write_archive(members: dict[str, bytes], path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def resign(world, members: dict[str, bytes]) -> None:
    """Rebuild MANIFEST.json + MANIFEST.sig with the real controller key (a compromised controller)."""
    from sopctl.archive import MANIFEST_DOMAIN
    from sopctl.changelog import chain

    key = chain().load_private_key(str(world.home / "keys" / "controller.key"))
    manifest = json.loads(members[f"{CID}/MANIFEST.json"])
    manifest["files"] = {n.split("/", 1)[1]: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                         for n, d in members.items() if not n.endswith(("MANIFEST.json", "MANIFEST.sig"))}
    body = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    members[f"{CID}/MANIFEST.json"] = body
    members[f"{CID}/MANIFEST.sig"] = key.sign(MANIFEST_DOMAIN + body).hex().encode() + b"\n"


def test_close_hook_wrote_reports_and_a_verifiable_archive(world):
    reports = change_dir(world) / "reports"
    assert sorted(p.name for p in reports.iterdir()) == [
        "report.en.html", "report.en.md", "report.id.html", "report.id.md", "report.json"]
    assert all(p.stat().st_mode & 0o077 == 0 for p in reports.iterdir())
    key = world.home / "keys" / "controller.key"
    assert key.stat().st_mode & 0o777 == 0o600
    archive = the_archive(world)
    assert archive.stat().st_mode & 0o222 == 0  # written read-only, never overwritten
    proc, res = verify(world, archive, "--roster", str(world.tmp / "roster.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(a["signature"] == "not_checked" for a in res["checks"]["audit_logs"])
    proc, res = verify(world, archive, "--roster", str(world.tmp / "roster.yml"),
                       "--public-key", str(world.tmp / "audit.pub"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(a["signature"] == "verified" for a in res["checks"]["audit_logs"]), res["checks"]["audit_logs"]
    assert res["ok"] and res["checks"]["manifest"]["hash_mismatches"] == 0
    assert res["checks"]["approvals"] == {"total": 7, "signatures_verified": 7, "bound_to_archived_cr_and_plan": 7,
                                          "roster_pinned": True}
    assert len(res["checks"]["audit_logs"]) == 6 and all(a["status"] == "intact" for a in res["checks"]["audit_logs"])
    assert res["retention"]["setting"] == "10y" and res["retention"]["keep_until"] > "2036"
    types = [r["type"] for r in world.audit_records(CID)]
    assert types.index("stage6_reports") < types.index("archive_written") < types.index("change_closed")
    names = set(read_members(archive))
    for n in ("MANIFEST.json", "MANIFEST.sig", "archive.json", "change_request.json", "approvals.json", "roster.json",
              "controller.pub", "audit/controller.jsonl", "evidence/stage1/plan.json",
              "evidence/stage2/backup/prd-local-1/checklist.json", "reports/report.id.html", "reports/report.json"):
        assert f"{CID}/{n}" in names, n
    assert any("/runner/stage3-" in n and "/job_events/" in n for n in names)
    assert not any(n.endswith(("/command", "/stdout", "/stderr")) or "/env/" in n for n in names)


def test_report_content_from_the_real_runs(world):
    rep = json.loads((change_dir(world) / "reports" / "report.json").read_text())
    assert rep["change"]["id"] == CID and rep["change"]["state"] == "closed"
    assert [r["stage"] for r in rep["stage_runs"] if r["status"] == "succeeded"] == ["1", "2", "3", "4", "5"]
    assert all(a["signature_valid"] and a["bound_to_current"] for a in rep["approvals"])
    assert {(a["gate"], a["person"]) for a in rep["approvals"]} >= {("plan", "sari"), ("close", "sari"),
                                                                    ("signoff", "rina")}
    assert [r["rule"] for r in rep["refusals"]] == ["SoD-1"]
    assert any(p["kind"] == "refusal" and "SoD-1" in p["text"] for p in rep["evaluation"]["problems"])
    ev = rep["evidence"]
    assert [(b["host"], b["verdict"]) for b in ev["backup"]] == [("prd-local-1", "passed"), ("prd-local-2", "passed")]
    assert ev["artifacts"]["verdict"] == "passed" and ev["staging"]["verdict"] == "passed"
    assert [x["verdict"] for x in ev["execution"]] == ["passed", "passed"]
    # the stand-in stages 4/5 write no test or monitoring evidence: the report must not invent any
    assert ev["functional_tests"] is None and ev["security_tests"] is None and ev["monitoring"] is None
    assert {h["host"] for h in rep["hosts"]} == {"localhost", "prd-local-1", "prd-local-2"}
    assert sum(h["changed"] for h in rep["hosts"] if h["stage"] == "3" and h["host"] != "localhost") >= 2
    e = rep["evaluation"]
    assert e["planned_downtime_minutes"] == 5 and e["actual_downtime_minutes"] is None
    assert e["stage3_duration_minutes"] > 0 and e["window_minutes"] == 180.0
    assert any("Evidence missing for" in f and "monitoring" in f for f in e["followups"])
    comp = {c["control"]: {i["evidence"]: i["available"] for i in c["items"]} for c in rep["compliance"]}
    assert comp["ISO 27001:2022 A.8.13 / NIST CP-9(1) / CIS 11.5"] == {"backup": True}
    assert comp["ISO 27001:2022 A.8.19 / NIST SI-7(15)"] == {"artifacts": True}
    assert comp["ISO 27001:2022 A.8.29 / NIST SI-2"] == {"security_tests": False}
    md_id = (change_dir(world) / "reports" / "report.id.md").read_text()
    md_en = (change_dir(world) / "reports" / "report.en.md").read_text()
    assert "## 7. Uji fungsional\n\n_tidak tersedia_" in md_id
    assert "## 8. Monitoring statistics\n\n_not available_" in md_en
    assert "Laporan Perubahan Sistem" in md_id and "SoD-1" in md_en


def test_report_cli_formats(world):
    out = tmp = world.tmp / "r.html"
    ok(world.sopctl(None, "report", CID, "--format", "html", "--lang", "en", "--output", str(out)))
    html = tmp.read_text()
    assert html.startswith("<!DOCTYPE html>") and "@media print" in html
    assert "http://" not in html and "https://" not in html
    proc = ok(world.sopctl(None, "report", CID, "--format", "json"))
    assert json.loads(proc.stdout)["change"]["id"] == CID
    proc = ok(world.sopctl(None, "report", CID, "--format", "md", "--lang", "id"))
    assert "tidak tersedia" in proc.stdout
    assert world.sopctl(None, "report", "CHG-2026-0000").returncode == 2


def test_planted_secrets_never_in_reports_or_archives(world):
    # the secrets really were reachable: ansible-runner's command file holds the environment
    commands = list((change_dir(world) / "runner" / "artifacts").glob("*/command"))
    assert commands and any(ENV_SECRET in c.read_text() for c in commands)
    # a second archive through the CLI, next to the one the close hook wrote
    out = world.tmp / "archives"
    ok(world.sopctl(None, "archive", CID, "--output", str(out), env=SECRET_ENV))
    archives = [the_archive(world), *out.glob("*.tar.gz")]
    assert len(archives) == 2
    for archive in archives:
        blob = archive.read_bytes()
        members = read_members(archive)
        assert len(members) > 50
        for secret in SECRETS:
            s = secret.encode()
            assert s not in blob
            for name, data in members.items():
                assert s not in data, f"{secret} in {name} of {archive}"
    for p in (change_dir(world) / "reports").iterdir():
        for secret in SECRETS:
            assert secret not in p.read_text(), p


def _tampered(world, tmp_path, mutate, resign_manifest=False):
    members = read_members(the_archive(world))
    mutate(members)
    if resign_manifest:
        resign(world, members)
    return write_archive(members, tmp_path / "tampered.tar.gz")


def _flip(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


CASES = {
    "changed": (lambda m: m.__setitem__(f"{CID}/evidence/stage2/staging.json",
                                        b'{"verdict": "passed", "passed": true, "x": 1}'),
                "evidence/stage2/staging.json: SHA-256 does not match the manifest (file changed)"),
    "removed": (lambda m: m.pop(f"{CID}/evidence/stage2/backup/prd-local-2/checklist.json"),
                "evidence/stage2/backup/prd-local-2/checklist.json: listed in the manifest but missing"),
    "added": (lambda m: m.__setitem__(f"{CID}/evidence/stage4/extra.json", b"{}"),
              "evidence/stage4/extra.json: in the archive but not in the manifest (file added)"),
    "signature": (lambda m: m.__setitem__(f"{CID}/MANIFEST.sig", _flip(m[f"{CID}/MANIFEST.sig"].strip()) + b"\n"),
                  "MANIFEST.sig: the manifest signature does not verify"),
    "manifest": (lambda m: m.__setitem__(f"{CID}/MANIFEST.json", m[f"{CID}/MANIFEST.json"].replace(
        b'"size"', b'"size" ', 1)), "MANIFEST.sig: the manifest signature does not verify"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tampered_archive_fails_with_the_reason(world, tmp_path, case):
    mutate, reason = CASES[case]
    proc, res = verify(world, _tampered(world, tmp_path, mutate))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert not res["ok"] and any(reason in p for p in res["problems"]), res["problems"]
    text = world.sopctl(None, "audit", "verify", str(tmp_path / "tampered.tar.gz"), "--public-key", str(pub(world)))
    assert text.returncode == 1 and "archive FAILED" in text.stdout and reason in text.stdout


def test_audit_log_edited_and_resigned_manifest_still_fails(world, tmp_path):
    """Even the controller key cannot hide an edited audit log: the hash chain breaks."""
    def edit(m):
        name = f"{CID}/audit/controller.jsonl"
        m[name] = m[name].replace(b'"comment":"plan ok"', b'"comment":"plan OK"', 1)
    proc, res = verify(world, _tampered(world, tmp_path, edit, resign_manifest=True))
    assert proc.returncode == 1
    assert res["checks"]["manifest_signature"].startswith("verified")
    assert any(p.startswith("audit/controller.jsonl: audit log TAMPERED") for p in res["problems"]), res["problems"]


def test_approval_by_someone_not_in_the_roster_fails(world, tmp_path):
    from sopctl import approvals as ap

    # an outsider's key signs an approval; a (compromised) controller re-signs the manifest
    outsider = ap.keygen("mallory", tmp_path / "mallory")[1]
    ident = ap.load_identity(outsider)

    def add(m):
        rows = json.loads(m[f"{CID}/approvals.json"])
        row = dict(rows[-1], person="mallory", comment="looks fine", id=999)
        rows.append(ap.sign_decision(ident, {k: v for k, v in row.items() if k not in ("key_id", "signature")}))
        m[f"{CID}/approvals.json"] = json.dumps(rows, indent=2, sort_keys=True).encode() + b"\n"
    proc, res = verify(world, _tampered(world, tmp_path, add, resign_manifest=True))
    assert proc.returncode == 1
    assert any("mallory" in p and "not in the archive's roster" in p for p in res["problems"]), res["problems"]

    # the roster inside the archive also lists mallory: only the verifier's pinned roster catches it
    def add_with_roster(m):
        add(m)
        roster = json.loads(m[f"{CID}/roster.json"])
        roster["people"]["mallory"] = {"name": "Mallory", "roles": ["it_manager"],
                                       "public_key": (tmp_path / "mallory" / "mallory.pub").read_text()}
        m[f"{CID}/roster.json"] = json.dumps(roster, indent=2, sort_keys=True).encode() + b"\n"
    archive = _tampered(world, tmp_path, add_with_roster, resign_manifest=True)
    proc, res = verify(world, archive)
    assert proc.returncode == 0, res  # consistent in itself ...
    proc, res = verify(world, archive, "--roster", str(world.tmp / "roster.yml"))
    assert proc.returncode == 1  # ... but not against the pinned roster
    assert any("mallory is not in the pinned roster" in p for p in res["problems"]), res["problems"]


def test_pinned_roster_with_another_key_fails(world, tmp_path):
    from sopctl import approvals as ap

    roster = yaml.safe_load((world.tmp / "roster.yml").read_text())
    ap.keygen("agus", tmp_path / "agus2")
    roster["people"]["agus"]["public_key_file"] = str(tmp_path / "agus2" / "agus.pub")
    pinned = tmp_path / "roster.yml"
    pinned.write_text(yaml.safe_dump(roster))
    proc, res = verify(world, the_archive(world), "--roster", str(pinned))
    assert proc.returncode == 1
    assert any("archive's key for agus differs from the pinned roster" in p for p in res["problems"])


def test_wrong_or_missing_public_key(world, tmp_path):
    from sopctl.changelog import chain

    chain().write_keypair(str(tmp_path / "other.key"), str(tmp_path / "other.pub"))
    proc = world.sopctl(None, "audit", "verify", str(the_archive(world)), "--public-key", str(tmp_path / "other.pub"))
    assert proc.returncode == 1 and "manifest signature does not verify" in proc.stdout
    proc = world.sopctl(None, "audit", "verify", str(the_archive(world)))
    assert proc.returncode == 2 and "--public-key" in proc.stdout


def test_verify_needs_nothing_but_the_archive_and_keys(world, tmp_path):
    """Offline: copy the archive and the public key elsewhere; verify without SOPCTL_HOME."""
    import shutil

    archive = shutil.copy(the_archive(world), tmp_path / "a.tar.gz")
    key = shutil.copy(pub(world), tmp_path / "controller.pub")
    env = {"SOPCTL_HOME": str(tmp_path / "empty-home"), "PYTHONPATH": world.env["PYTHONPATH"],
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "sopctl.cli", "audit", "verify", str(archive), "--public-key",
                           str(key)], capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "archive INTACT" in proc.stdout
