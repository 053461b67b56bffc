#!/usr/bin/env python3
"""The itsop.change demo: the whole SOP, through sopctl, on local staging and production hosts.

Run by ``bash scripts/demo.sh`` (README command 1) after the set-up, and by the end-to-end test.
Every identity, key and signature here is made now for the demo and labelled DEMO; nothing is
hard-coded as a result: every line printed comes from sopctl, the hosts or the evidence files.

Scenarios (docs/demo.md):
  1. security patch itsop-demo-web 1.0.0 -> 1.1.0 through all six stages (gates, backups with
     restore test, GPG + SHA-256 + ClamAV (custom database) artifact verification, staging first,
     window, validation, monitoring, report, archive, offline ``sopctl audit verify``);
  2. update to the broken 1.2.0: stopped in staging by its health check, production untouched,
     cancelled by the IT manager;
  3. update to 1.3.0 with a configuration change: healthy at first, then fails during the
     monitoring period in production -> incident, automatic rollback to 1.1.0 with the
     configuration restored;
  4-6. the network scenarios on three FRRouting routers (scripts/demo_network.py): a routing change
     through all six stages, a change stopped in staging by the network configuration standard, a
     production peering that breaks during monitoring -> rollback to the byte-identical configuration.

Writes everything under --workdir (default .demo/) and a machine-readable summary.json.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

import demo_network

REPO = Path(__file__).resolve().parents[1]
APTREPO = REPO / ".cache" / "aptrepo"
EXAMPLE_CR = REPO / "docs" / "examples" / "change-requests" / "security-patch-1.1.0.yml"
ROSTER = REPO / "tests" / "fixtures" / "sopctl" / "roster.demo.yml"
PACKAGE = "itsop-demo-web"
CONFIG_FILE = "/etc/itsop-demo-web/config.ini"
MARKER = ".itsop-demo-workdir"
JAKARTA = ZoneInfo("Asia/Jakarta")  # the demo change windows' time zone
HOSTS = {"itsop-stg-1": "stg-1", "itsop-prd-1": "prd-1", "itsop-prd-2": "prd-2"}
PRODUCTION = ["itsop-prd-1", "itsop-prd-2"]
# 1.3.0's /health fails after 15 requests per process (tests/fixtures/build_demo_debs.py); the
# monitoring period probes every 2 s, so the leak shows within the period.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


class DemoError(RuntimeError):
    pass


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


class Demo:
    error = DemoError
    jakarta = JAKARTA

    def __init__(self, workdir: Path, prefix: str, label: str, quiet: bool) -> None:
        self.work = workdir
        self.prefix = prefix
        self.label = label
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.summary: dict[str, Any] = {"workdir": str(workdir), "scenarios": [], "started": iso(datetime.now(UTC))}
        self.env = dict(os.environ)
        self.env.update({"SOPCTL_HOME": str(workdir / "sopctl-home"), "ANSIBLE_NOCOLOR": "1",
                         "PYTHONUNBUFFERED": "1"})
        self.env.pop("SOPCTL_PLAYBOOK_DIR", None)  # the real stage playbooks of the collection
        self.sopctl_bin = str(Path(sys.executable).parent / "sopctl")

    # ------------------------------------------------------------------ output
    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def head(self, text: str) -> None:
        took = time.monotonic() - self.t0
        self.say(f"\n=== [{took:6.0f} s] {text}")

    # ------------------------------------------------------------------ processes
    def sh(self, *argv: str, check: bool = True, env: dict[str, str] | None = None, show: bool = False,
           timeout: int = 1800, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(argv), capture_output=True, text=True, env=env or self.env, timeout=timeout,
                              check=False, cwd=REPO, input=stdin)
        if show and proc.stdout.strip():
            self.say(textwrap.indent(proc.stdout.rstrip(), "    "))
        if check and proc.returncode != 0:
            raise DemoError(f"{' '.join(argv)} failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                            f"{proc.stderr[-3000:]}")
        return proc

    def sopctl(self, person: str | None, *args: str, expect: tuple[int, ...] = (0,), stream: bool = False
               ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if person:
            env["SOPCTL_IDENTITY"] = str(self.work / "identities" / person / "identity.yml")
        who = f"{person} ({self.roles[person]})" if person else "anyone"
        self.say(f"  $ [{who}] sopctl {' '.join(args)}")
        if stream:
            # live progress (plain lines) straight to the terminal; keep a copy for the checks
            lines = []
            with subprocess.Popen([self.sopctl_bin, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=env, cwd=self.work) as proc:
                assert proc.stdout is not None
                for line in proc.stdout:
                    lines.append(line)
                    # progress: plays, changes, failures and recaps; not every unchanged task
                    routine = line.startswith("[stage") and (": ok - " in line or ": skipped - " in line
                                                             or "] runner " in line)
                    if not (routine or (self.quiet and line.startswith("[stage"))):
                        self.say("    " + line.rstrip())
            result = subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines), "")
        else:
            result = subprocess.run([self.sopctl_bin, *args], capture_output=True, text=True, env=env,
                                    cwd=self.work, timeout=1800, check=False)
            out = (result.stdout + result.stderr).rstrip()
            if out:
                self.say(textwrap.indent(out, "    "))
        if result.returncode not in expect:
            raise DemoError(f"sopctl {' '.join(args)} as {person}: exit {result.returncode}, expected {expect}")
        return result

    def status(self, change_id: str) -> dict[str, Any]:
        proc = subprocess.run([self.sopctl_bin, "status", change_id, "--json"], capture_output=True, text=True,
                              env=self.env, check=True)
        return json.loads(proc.stdout)

    def show_gate(self, change_id: str) -> None:
        st = self.status(change_id)
        for step in st["steps"]:
            if step["step"].startswith("gate ") and step["step"] != "gate evidence" and step["status"] == "waiting":
                need = ", ".join(f"{r} x{n}" for r, n in step["missing"].items())
                self.say(f"  -> {change_id} is WAITING at {step['step']}: needs {need} (state {st['state']})")

    def container(self, host: str) -> str:
        return self.prefix + HOSTS[host]

    def on_host(self, host: str, *argv: str) -> str:
        return self.on_container(self.container(host), *argv)

    def on_container(self, name: str, *argv: str) -> str:
        return self.sh("podman", "exec", name, *argv).stdout

    def versions(self) -> dict[str, str]:
        return {h: self.on_host(h, "dpkg-query", "-W", "-f", "${Version}", PACKAGE).strip() for h in HOSTS}

    def config_digests(self) -> dict[str, str]:
        return {h: hashlib.sha256(self.on_host(h, "cat", CONFIG_FILE).encode()).hexdigest()[:16] for h in HOSTS}

    def show_hosts(self, title: str) -> dict[str, str]:
        v = self.versions()
        self.say(f"  {title}: " + ", ".join(f"{h}={v[h]}" for h in HOSTS))
        return v

    # ------------------------------------------------------------------ set-up
    def prepare_workdir(self) -> None:
        if self.work.exists():
            if not (self.work / MARKER).exists():
                raise DemoError(f"{self.work} exists and is not a demo work directory (no {MARKER}); "
                                "choose another --workdir")
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True, mode=0o700)
        (self.work / MARKER).write_text("itsop.change demo work directory; removed by the next demo run\n")
        for d in ("identities", "keys", "trust", "artifacts", "change-requests", "sopctl-home"):
            (self.work / d).mkdir(mode=0o700)

    def start_hosts(self) -> None:
        self.head("Demo hosts: fresh Debian 12 containers with systemd (staging 1, production 2)")
        env = dict(self.env, ITSOP_DEMO_PREFIX=self.prefix, ITSOP_DEMO_LABEL=self.label)
        self.sh("bash", "scripts/demo-hosts", "down", env=env)
        self.sh("bash", "scripts/demo-hosts", "up", env=env, show=True)
        hosts = self.ssh_access()
        inv = {"all": {
            "children": {
                "staging": {"hosts": {"itsop-stg-1": hosts["itsop-stg-1"]}},
                "production": {"hosts": {h: hosts[h] for h in PRODUCTION}},
                "demo_web": {"children": {"staging": {}, "production": {}}},
            },
            "vars": {
                # like real servers: SSH as root with a key, pinned host keys, pipelining
                "ansible_connection": "ssh",
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(self.work / "keys" / "demo_ssh"),
                "ansible_ssh_common_args": f"-o UserKnownHostsFile={self.work / 'keys' / 'known_hosts'} "
                                           "-o StrictHostKeyChecking=yes",
                "ansible_ssh_pipelining": True,
                "ansible_python_interpreter": "/usr/bin/python3",
                "demo_app_repo_path": "/srv/itsop-repo",
                # the demo application answers 503 while this flag exists (role maintenance; production: none)
                "maintenance_flag": "/var/lib/itsop-demo-web/maintenance",
                # site settings of the demo (a company sets these in its own inventory)
                "artifact_verify_base_dir": str(self.work / "artifact-store"),
                "update_verified_dir": str(self.work / "artifact-store" / "verified") + "/{{ update_change_id }}",
                "artifact_verify_gpg_keys": [str(self.work / "trust" / "vendor-demo.asc")],
                "artifact_verify_gpg_fingerprints": [self.vendor_fpr],
                "artifact_verify_clamav": {"database": str(self.work / "trust" / "clamav")},
                "backup_store_dir": str(self.work / "backup-store"),
            }}}
        self.inventory = self.work / "inventory.yml"
        self.inventory.write_text("# generated by scripts/demo_sop.py (DEMO site inventory)\n"
                                  + yaml.safe_dump(inv, sort_keys=False))
        self.say("  installing the baseline itsop-demo-web 1.0.0 on every host (playbooks/demo_app.yml)")
        self.sh(str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(self.inventory),
                "playbooks/demo_app.yml", "-e", "demo_app_version=1.0.0")
        self.show_hosts("installed")

    def ssh_access(self) -> dict[str, dict[str, str]]:
        """A DEMO controller SSH key in each host's root account, sshd started, host keys pinned."""
        key = self.work / "keys" / "demo_ssh"
        out = self.sh("bash", "scripts/demo-hosts", "ssh-access", str(key), *(self.container(h) for h in HOSTS)).stdout
        addrs = dict(line.split() for line in out.splitlines())
        self.say("  SSH: DEMO controller key installed for root, host keys pinned in keys/known_hosts")
        return {host: {"ansible_host": addrs[self.container(host)]} for host in HOSTS}

    def people(self) -> None:
        self.head("DEMO people and keys: one Ed25519 identity per SOP role holder (made now, never committed)")
        roster = yaml.safe_load(ROSTER.read_text())
        self.roles = {pid: "/".join(spec["roles"]) for pid, spec in roster["people"].items()}
        for pid, spec in roster["people"].items():
            d = self.work / "identities" / pid
            self.sh(self.sopctl_bin, "identity", "keygen", "--id", pid, "--dir", str(d))
            spec["public_key_file"] = str(d / f"{pid}.pub")
            self.say(f"  {pid:5} {spec['name']}  roles: {', '.join(spec['roles'])}")
        (self.work / "roster.yml").write_text("# DEMO roster (generated)\n" + yaml.safe_dump(roster, sort_keys=False))
        self.sh(self.sopctl_bin, "audit", "keygen", str(self.work / "keys" / "audit.pem"))
        now = datetime.now(UTC)
        freezes = {"freezes": [{"name": "Tutup buku akhir tahun (DEMO)", "start": iso(now + timedelta(days=30)),
                                "end": iso(now + timedelta(days=45))}]}
        (self.work / "freeze.yml").write_text(yaml.safe_dump(freezes, sort_keys=False))
        cfg = {"roster": str(self.work / "roster.yml"), "freeze_calendar": str(self.work / "freeze.yml"),
               "audit_signing_key": str(self.work / "keys" / "audit.pem")}
        (self.work / "sopctl-home" / "config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.sopctl(None, "roster", "check")

    def trust(self) -> None:
        self.head("Security team: DEMO vendor signing key (GPG) and a custom ClamAV signature database")
        gnupg = Path(tempfile.mkdtemp(prefix="itsop-dg-"))  # short: gpg-agent socket path limit
        os.chmod(gnupg, 0o700)
        gpg = ["gpg", "--homedir", str(gnupg), "--batch", "--no-tty"]
        try:
            uid = "itsop demo vendor (DEMO signing key) <vendor@demo.invalid>"
            self.sh(*gpg, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
            out = self.sh(*gpg, "--with-colons", "--list-keys", uid).stdout
            self.vendor_fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
            pub = self.sh(*gpg, "--armor", "--export", self.vendor_fpr).stdout
            (self.work / "trust" / "vendor-demo.asc").write_text(pub)
            self.say(f"  vendor key {self.vendor_fpr} pinned for artifact verification")
            for version in ("1.1.0", "1.2.0", "1.3.0"):
                src = APTREPO / f"{PACKAGE}_{version}_all.deb"
                dst = self.work / "artifacts" / src.name
                shutil.copy2(src, dst)
                self.sh(*gpg, "--yes", "--local-user", self.vendor_fpr, "--detach-sign", "--output",
                        str(dst) + ".sig", str(dst))
            self.say("  signed the vendor's packages 1.1.0, 1.2.0, 1.3.0 (detached signatures)")
        finally:
            subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "all"], capture_output=True, check=False)
            shutil.rmtree(gnupg, ignore_errors=True)
        db = self.work / "trust" / "clamav"
        db.mkdir(mode=0o700)
        (db / "itsop-demo.ndb").write_text(f"Itsop.Demo.Eicar-Custom:0:*:{EICAR.hex()}\n"
                                           f"Itsop.Demo.Backdoor-Marker:0:*:{b'ITSOP-DEMO-BACKDOOR'.hex()}\n")
        probe = self.work / "trust" / "eicar.probe"
        probe.write_bytes(EICAR)
        proc = self.sh("clamscan", "--no-summary", "--database", str(db), str(probe), check=False)
        probe.unlink()
        if proc.returncode != 1 or "Itsop.Demo.Eicar-Custom" not in proc.stdout:
            raise DemoError(f"the custom ClamAV database does not detect the EICAR probe: {proc.stdout} {proc.stderr}")
        self.say(f"  ClamAV database {db}/itsop-demo.ndb (2 signatures, offline); self-test: EICAR probe "
                 "detected as Itsop.Demo.Eicar-Custom")

    # ------------------------------------------------------------------ change requests
    def cr(self, change_id: str, version: str, title: str, config_files: list[dict[str, Any]] | None = None,
           **changes: Any) -> Path:
        data = copy.deepcopy(yaml.safe_load(EXAMPLE_CR.read_text()))
        now = datetime.now(UTC)
        deb = self.work / "artifacts" / f"{PACKAGE}_{version}_all.deb"
        data.update({
            "id": change_id, "title": title,
            "description": f"{title} (DEMO change on the local demo estate).",
            # written in the window's time zone: an offset that disagrees with it is refused
            "window": {"start": (now - timedelta(minutes=5)).astimezone(JAKARTA).isoformat(timespec="seconds"),
                       "end": (now + timedelta(hours=2)).astimezone(JAKARTA).isoformat(timespec="seconds"),
                       "timezone": "Asia/Jakarta", "grace_minutes": 0},
        })
        data["items"] = {
            "packages": [{"name": PACKAGE, "version": version, "service": PACKAGE}],
            "artifacts": [{"name": deb.name, "source": str(deb), "sha256": hashlib.sha256(deb.read_bytes()).hexdigest(),
                           "size": deb.stat().st_size, "signature": str(deb) + ".sig", "install": True,
                           "package": PACKAGE, "version": version}],
        }
        if config_files:
            data["items"]["config_files"] = config_files
        for check in data["test_plan"]["functional"]:
            if check.get("type") == "package":
                check["version"] = version
            if check.get("body_contains"):
                check["body_contains"] = version
        data["monitoring"].update({"duration_seconds": 30, "interval_seconds": 3})
        for key, value in changes.items():
            data[key] = value if not isinstance(value, dict) or key not in data else {**data[key], **value}
        path = self.work / "change-requests" / f"{change_id}.yml"
        path.write_text("# Form Permintaan Perubahan Sistem (DEMO, generated by scripts/demo_sop.py)\n"
                        + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return path

    def close(self, cid: str, comment: str) -> None:
        """The IT manager's closing approval, then Tahap 6 (report, evaluation, archive): closed."""
        self.approve(cid, "close", [("sari", comment)])
        self.say("  Tahap 6: report, evaluation and audit archive")
        self.sopctl("eko", "run", cid, stream=True)
        state = self.status(cid)["state"]
        if state != "closed":
            raise DemoError(f"{cid} ended in state {state}, expected closed")

    def stopped_in_staging(self, cid: str, path: Path, risk: str) -> dict[str, Any]:
        """Submit, plan, approve the plan; stage 2 must fail in staging. Returns the staging verdict."""
        self.sopctl("budi", "submit", str(path), "--inventory", str(self.inventory))
        self.sopctl("eko", "run", cid, stream=True)
        self.approve(cid, "plan", [("sari", "approved"), ("dewi", "downtime ok"), ("agus", risk)])
        self.sopctl("eko", "run", cid, stream=True, expect=(1,))
        staging = json.loads((self.work / "sopctl-home" / "changes" / cid / "evidence" / "stage2"
                              / "staging.json").read_text())
        self.say(f"  staging verdict: passed={staging['passed']}: " + "; ".join(staging["reasons"])[:400])
        return staging

    def approve(self, change_id: str, gate: str, approvals: list[tuple[str, str]]) -> None:
        self.show_gate(change_id)
        for person, comment in approvals:
            self.sopctl(person, "approve", change_id, "--gate", gate, "--comment", comment)

    # ------------------------------------------------------------------ scenarios
    def scenario_patch(self) -> dict[str, Any]:
        cid = "CHG-2026-1101"
        self.head(f"Scenario 1: {cid} security patch {PACKAGE} 1.0.0 -> 1.1.0 through all six stages")
        before = self.show_hosts("before")
        path = self.cr(cid, "1.1.0", "Security patch itsop-demo-web 1.1.0 (DEMO-2026-0001)")
        self.sopctl("budi", "validate", str(path))
        self.sopctl("budi", "submit", str(path), "--inventory", str(self.inventory))
        self.say("  Tahap 1: plan and impact analysis from the hosts (read-only)")
        self.sopctl("eko", "run", cid, stream=True)
        self.say("  segregation of duties: the requester cannot approve his own plan")
        self.sopctl("budi", "approve", cid, "--gate", "plan", "--comment", "looks fine", expect=(3,))
        self.approve(cid, "plan", [("sari", "plan and schedule approved (IT manager)"),
                                   ("dewi", "downtime of a few seconds per host is acceptable (users)"),
                                   ("agus", "risk medium: fixes DEMO-2026-0001, rollback tested in stage 2 "
                                            "(security pre-change evaluation)")])
        self.say("  Tahap 2-4: backup + restore test, artifact verification, staging, execution in the "
                 "window, validation")
        self.sopctl("eko", "run", cid, stream=True)
        mid = self.show_hosts("after stage 3")
        self.approve(cid, "signoff", [("rina", "functional tests passed (QA)"),
                                      ("agus", "security checks passed, no new ports or setuid files (security)"),
                                      ("dewi", "the application works for us (users acceptance)")])
        self.say("  Tahap 5: go-live and monitoring")
        self.sopctl("eko", "run", cid, stream=True)
        self.close(cid, "change closed; evaluation: on time, no incident (IT manager)")
        after = self.show_hosts("after")
        res = self.finish(cid)
        res.update({"versions_before": before, "versions_after_stage3": mid, "versions_after": after})
        return res

    def scenario_broken(self) -> dict[str, Any]:
        cid = "CHG-2026-1102"
        self.head(f"Scenario 2: {cid} update to the broken 1.2.0 - stopped in staging, production untouched")
        before = self.show_hosts("before")
        path = self.cr(cid, "1.2.0", "Feature update itsop-demo-web 1.2.0 (new landing page)",
                       type="update", reason={"kind": "business_request", "details": "New landing page."},
                       risk="low")
        staging = self.stopped_in_staging(cid, path, "risk low: feature release, no security impact")
        self.say("  stage 3 stays closed: the evidence gate needs a passed stage 2")
        self.sopctl(None, "status", cid)
        after = self.show_hosts("after")
        self.sopctl("sari", "cancel", cid, "--reason", "1.2.0 failed its health check in staging; waiting for "
                                                      "the vendor's fix")
        if any(after[h] != before[h] for h in PRODUCTION):
            raise DemoError(f"production changed although staging failed: {before} -> {after}")
        res = self.finish(cid)
        res.update({"versions_before": before, "versions_after": after, "staging_passed": staging["passed"]})
        return res

    def scenario_monitoring_failure(self) -> dict[str, Any]:
        cid = "CHG-2026-1103"
        self.head(f"Scenario 3: {cid} update to 1.3.0 with a configuration change - fails while monitored "
                  "in production")
        before = self.show_hosts("before")
        cfg_before = self.config_digests()
        current = self.on_host("itsop-prd-1", "cat", CONFIG_FILE)
        new_config = current.replace("greeting = Selamat datang di layanan demo",
                                     "greeting = Selamat datang di layanan demo versi 1.3")
        if new_config == current:
            raise DemoError(f"unexpected {CONFIG_FILE} on itsop-prd-1: cannot prepare the configuration change")
        path = self.cr(cid, "1.3.0", "Performance release itsop-demo-web 1.3.0 with new greeting",
                       config_files=[{"dest": CONFIG_FILE, "content": new_config, "owner": "root", "group": "root",
                                      "mode": "0644", "service": PACKAGE}],
                       type="update", reason={"kind": "business_request", "details": "Faster pages, new greeting."},
                       monitoring={"duration_seconds": 90, "interval_seconds": 2})
        self.sopctl("budi", "submit", str(path), "--inventory", str(self.inventory))
        self.sopctl("eko", "run", cid, stream=True)
        self.approve(cid, "plan", [("sari", "approved"), ("dewi", "downtime ok"),
                                   ("agus", "risk medium: new release; monitoring with automatic rollback")])
        self.sopctl("eko", "run", cid, stream=True)
        mid = self.show_hosts("after stage 3")
        cfg_mid = self.config_digests()
        self.approve(cid, "signoff", [("rina", "functional tests passed"), ("agus", "security checks passed"),
                                      ("dewi", "accepted")])
        self.say("  Tahap 5: monitoring in production (1.3.0 degrades after a while)")
        self.sopctl("eko", "run", cid, stream=True, expect=(1,))
        after = self.show_hosts("after the automatic rollback")
        cfg_after = self.config_digests()
        self.say(f"  {CONFIG_FILE} sha256: before {cfg_before['itsop-prd-1']}, after stage 3 "
                 f"{cfg_mid['itsop-prd-1']}, after rollback {cfg_after['itsop-prd-1']}")
        incidents = json.loads((self.work / "sopctl-home" / "changes" / cid / "evidence" / "stage5"
                                / "incidents.json").read_text())["incidents"]
        for i in incidents:
            self.say(f"  incident {i.get('id')} on {i.get('host')}: {str(i.get('what'))[:160]}; rollback "
                     f"succeeded={(i.get('rollback') or {}).get('succeeded')}")
        st = self.status(cid)
        if st["state"] != "rolled_back":
            raise DemoError(f"{cid} ended in state {st['state']}, expected rolled_back")
        res = self.finish(cid)
        res.update({"versions_before": before, "versions_after_stage3": mid, "versions_after": after,
                    "config_before": cfg_before, "config_after_stage3": cfg_mid, "config_after": cfg_after,
                    "incidents": [{"id": i.get("id"), "host": i.get("host"),
                                   "rollback_succeeded": (i.get("rollback") or {}).get("succeeded")}
                                  for i in incidents]})
        return res

    def finish(self, cid: str) -> dict[str, Any]:
        """Report (html + md, Indonesian and English), archive and offline verification of one change."""
        home = self.work / "sopctl-home" / "changes" / cid
        reports = home / "reports"
        if not reports.is_dir():  # closed changes got theirs from the stage-6 hook
            reports.mkdir(mode=0o700)
            for fmt, lang in (("html", "id"), ("html", "en"), ("md", "id")):
                self.sopctl("sari", "report", cid, "--format", fmt, "--lang", lang, "--output",
                            str(reports / f"report.{lang}.{fmt}"))
        archives = sorted((home / "archive").glob("*.tar.gz")) if (home / "archive").is_dir() else []
        if not archives:
            self.sopctl("sari", "archive", cid)
            archives = sorted((home / "archive").glob("*.tar.gz"))
        archive = archives[-1]
        # offline check as an auditor would: the controller's archive key and the roster kept outside
        self.sopctl(None, "audit", "verify", str(archive), "--public-key",
                    str(self.work / "sopctl-home" / "keys" / "controller.pub"),
                    "--roster", str(self.work / "roster.yml"))
        st = self.status(cid)
        return {"change_id": cid, "state": st["state"], "reports": sorted(str(p) for p in reports.iterdir()),
                "archive": str(archive), "evidence": st["evidence_dir"], "audit": st["audit_dir"]}

    def run(self, scenarios: list[str]) -> int:
        self.prepare_workdir()
        self.people()
        self.trust()
        self.start_hosts()
        if any(name in demo_network.SCENARIOS for name in scenarios):
            inventory = yaml.safe_load(self.inventory.read_text())
            inventory["all"]["children"].update(demo_network.start_routers(self))
            self.inventory.write_text("# generated by scripts/demo_sop.py (DEMO site inventory)\n"
                                      + yaml.safe_dump(inventory, sort_keys=False))
        funcs = {"patch": self.scenario_patch, "broken": self.scenario_broken,
                 "monitoring": self.scenario_monitoring_failure}
        for name in scenarios:
            started = time.monotonic()
            res = funcs[name]() if name in funcs else demo_network.SCENARIOS[name](self)
            res.update({"scenario": name, "seconds": round(time.monotonic() - started, 1)})
            self.summary["scenarios"].append(res)
        self.summary["seconds"] = round(time.monotonic() - self.t0, 1)
        (self.work / "summary.json").write_text(json.dumps(self.summary, indent=2, sort_keys=True) + "\n")
        self.print_summary()
        return 0

    def print_summary(self) -> None:
        self.head("Summary")
        for s in self.summary["scenarios"]:
            versions = ", ".join(f"{h}={v}" for h, v in (s.get("hosts_now") or s["versions_after"]).items())
            self.say(f"  {s['change_id']}  {s['scenario']:10} {s['state']:12} {s['seconds']:6.0f} s   hosts now: "
                     f"{versions}")
            for r in s["reports"]:
                self.say(f"      report   {r}")
            self.say(f"      archive  {s['archive']}  (verified offline: sopctl audit verify)")
        self.say(f"  evidence and state: {self.work}/sopctl-home/changes/<CHANGE>/ ; summary {self.work}/summary.json")
        self.say(f"  whole demo: {self.summary['seconds']:.0f} s. Remove the hosts and routers: "
                 "scripts/demo-hosts down")


ALL_SCENARIOS = ["patch", "broken", "monitoring", *demo_network.SCENARIOS]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=REPO / ".demo")
    ap.add_argument("--prefix", default="itsop-", help="container name prefix (scripts/demo-hosts)")
    ap.add_argument("--label", default="itsop.demo=1", help="container label (scripts/demo-hosts)")
    ap.add_argument("--scenario", action="append", choices=ALL_SCENARIOS,
                    help="run only these scenarios (default: all six, in order)")
    ap.add_argument("--quiet", action="store_true", help="do not echo the per-task progress lines")
    args = ap.parse_args(argv)
    demo = Demo(args.workdir.resolve(), args.prefix, args.label, args.quiet)
    try:
        return demo.run(args.scenario or ALL_SCENARIOS)
    except DemoError as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
