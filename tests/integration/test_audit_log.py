"""Real ansible-playbook runs with the itsop.change.audit_log callback, verified with real sopctl."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, VENV_BIN, ansible_playbook, base_env, run

PLAYBOOKS = REPO / "tests" / "integration" / "playbooks" / "audit"
SENTINEL = "S3ntinel-Vault-9f1c2e7a"


def audit_env(log_dir: Path, **extra: str) -> dict[str, str]:
    env = base_env(ANSIBLE_CALLBACKS_ENABLED="itsop.change.audit_log", ITSOP_AUDIT_DIR=str(log_dir),
                   ANSIBLE_RETRY_FILES_ENABLED="0", **extra)
    for var in ("ITSOP_CHANGE_ID", "ITSOP_STAGE", "ITSOP_AUDIT_SIGNING_KEY", "ITSOP_OPERATOR"):
        if var not in extra:
            env.pop(var, None)
    return env


def local_inventory(tmp: Path, hosts=("audit-a", "audit-b"), unreachable: bool = False,
                    hostvars: dict | None = None) -> Path:
    inv: dict = {"all": {"hosts": {h: dict(hostvars or {}) for h in hosts},
                         "vars": {"ansible_connection": "local",
                                  "ansible_python_interpreter": str(VENV_BIN / "python")}}}
    if unreachable:
        inv["all"]["hosts"]["audit-down"] = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1",
                                             "ansible_port": 1, "ansible_user": "nobody"}
    path = tmp / "inventory.json"
    path.write_text(json.dumps(inv))
    return path


def sopctl(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return run([str(VENV_BIN / "sopctl"), *args], check=check)


def only_log(log_dir: Path) -> Path:
    logs = sorted(log_dir.glob("*.jsonl"))
    assert len(logs) == 1, logs
    return logs[0]


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.endswith(b"}")]


@pytest.fixture
def basic_log(tmp_path) -> Path:
    log_dir = tmp_path / "logs"
    out = tmp_path / "out"
    out.mkdir()
    env = audit_env(log_dir, ITSOP_CHANGE_ID="CR-2025-007", ITSOP_OPERATOR="alice")
    ansible_playbook(PLAYBOOKS / "basic.yml", "-i", str(local_inventory(tmp_path)), "--diff",
                     "-e", f"audit_test_dir={out}", "-e", "itsop_stage=3", env=env)
    return only_log(log_dir)


# ------------------------------------------------------------------ normal and failing runs

def test_normal_run_is_complete_and_verifies(basic_log):
    log_dir = basic_log.parent
    assert log_dir.stat().st_mode & 0o777 == 0o700
    assert basic_log.stat().st_mode & 0o777 == 0o600
    proc = sopctl("audit", "verify", str(basic_log))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "INTACT" in proc.stdout and "NOT SIGNED" in proc.stdout
    recs = records(basic_log)
    types = {r["type"] for r in recs}
    assert {"run_start", "playbook_start", "play_start", "task_start", "handler_task_start", "result",
            "stats", "checkpoint"} <= types
    assert recs[-1]["type"] == "checkpoint" and recs[-1]["final"] is True
    for r in recs:
        assert r["change_id"] == "CR-2025-007"
        assert r["operator"]["declared"] == "alice" and r["operator"]["os_user"]
        assert r["controller"]
    assert {r["stage"] for r in recs} == {"3"}  # from -e itsop_stage=3, on every record
    results = [r for r in recs if r["type"] == "result"]
    statuses = {(r["host"], r["task"]["name"], r["status"]) for r in results}
    assert ("audit-a", "Skipped task", "skipped") in statuses
    assert ("audit-b", "Loop over items", "item_ok") in statuses
    assert ("audit-a", "Report change", "ok") in statuses
    assert ("audit-b", "Run in the background", "async_ok") in statuses
    change = next(r for r in results if r["task"]["name"] == "Make a change" and r["host"] == "audit-a")
    assert change["changed"] is True and change["task"]["action"] == "ansible.builtin.copy"
    assert change["diff"][0]["after"] == "line audit-a\n"
    assert change["duration"] >= 0 and change["play"]["name"] == "Audit log basic run"
    items = [r["item"] for r in results if r["status"] == "item_ok" and r["host"] == "audit-a"]
    assert items == ["one", "two"]
    stats = next(r for r in recs if r["type"] == "stats")
    assert stats["hosts"]["audit-a"]["changed"] == 1
    assert "extra_vars" not in json.dumps(recs[0]["cli"])


def test_failing_run_verifies_and_show_lists_failures_first(tmp_path):
    log_dir = tmp_path / "logs"
    proc = ansible_playbook(PLAYBOOKS / "failing.yml", "-i", str(local_inventory(tmp_path, unreachable=True)),
                            env=audit_env(log_dir), check=False)
    assert proc.returncode != 0
    log = only_log(log_dir)
    assert sopctl("audit", "verify", str(log)).returncode == 0
    statuses = {(r.get("host"), r.get("status")) for r in records(log) if r["type"] == "result"}
    assert ("audit-a", "failed") in statuses and ("audit-down", "unreachable") in statuses
    assert ("audit-b", "item_failed") in statuses
    show = sopctl("audit", "show", str(log))
    assert show.returncode == 0, show.stderr
    text = show.stdout
    assert text.index("FAILURES") < text.index("PER HOST") < text.index("PER TASK")
    assert "deliberate failure on audit-a" in text and "UNREACHABLE  audit-down" in text
    assert "[ignored]" in text
    query = sopctl("audit", "query", str(log_dir), "--jmespath",
                   "[?type=='result' && status=='failed' && !ignore_errors].{host: host, task: task.name}")
    assert query.returncode == 0, query.stderr
    assert json.loads(query.stdout) == [{"host": "audit-a", "task": "Fails for real"}]
    assert sopctl("audit", "query", str(log), "--jmespath", "[?").returncode == 2


def test_missing_log_dir_disables_with_a_warning(tmp_path):
    env = audit_env(tmp_path / "unused")
    env.pop("ITSOP_AUDIT_DIR")
    out = tmp_path / "out"
    out.mkdir()
    proc = ansible_playbook(PLAYBOOKS / "basic.yml", "-i", str(local_inventory(tmp_path)),
                            "-e", f"audit_test_dir={out}", env=env)
    assert "no log_dir configured" in proc.stderr + proc.stdout
    assert "DISABLED" in proc.stderr + proc.stdout


def test_ansible_doc_renders_the_callback():
    proc = run([str(VENV_BIN / "ansible-doc"), "-t", "callback", "itsop.change.audit_log"])
    for word in ("log_dir", "ITSOP_AUDIT_DIR", "signing_key", "fsync", "checkpoint_every",
                 "redact_patterns", "callback_audit_log"):
        assert word in proc.stdout


# ------------------------------------------------------------------ tampering

def _edit(src: Path, dst: Path, fn) -> Path:
    lines = src.read_bytes().splitlines(keepends=True)
    dst.write_bytes(b"".join(fn(lines)))
    return dst


def test_tampering_a_real_log_is_detected(basic_log, tmp_path):
    lines = basic_log.read_bytes().splitlines(keepends=True)
    mid = len(lines) // 2
    # one byte inside the status of a result record
    target = next(i for i in range(mid, len(lines)) if b'"status":"ok"' in lines[i])

    def flip(ls):
        ls = list(ls)
        ls[target] = ls[target].replace(b'"status":"ok"', b'"status":"ak"', 1)
        return ls

    cases = {
        "flip": (flip, target + 1),
        "delete": (lambda ls: ls[:mid] + ls[mid + 1:], mid + 1),
        "reorder": (lambda ls: [*ls[:mid], ls[mid + 1], ls[mid], *ls[mid + 2:]], mid + 1),
        "insert": (lambda ls: [*ls[:mid], ls[mid - 1], *ls[mid:]], mid + 1),
    }
    for name, (fn, line) in cases.items():
        bad = _edit(basic_log, tmp_path / f"{name}.jsonl", fn)
        proc = sopctl("audit", "verify", "--json", str(bad))
        assert proc.returncode == 1, name
        res = json.loads(proc.stdout)["results"][0]
        assert res["status"] == "tampered" and res["first_bad_line"] == line, (name, res)
    truncated = _edit(basic_log, tmp_path / "truncated.jsonl", lambda ls: ls[:mid])
    proc = sopctl("audit", "verify", str(truncated))
    assert proc.returncode == 1 and "INCOMPLETE" in proc.stdout and "no end-of-run checkpoint" in proc.stdout
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(b"".join(lines[:mid]) + lines[mid][:40])
    proc = sopctl("audit", "verify", str(torn))
    assert proc.returncode == 1 and "TORN TAIL" in proc.stdout


def test_signed_run_and_chain_rewrite_without_the_key(tmp_path):
    key = tmp_path / "keys" / "audit.pem"
    key.parent.mkdir()
    gen = sopctl("audit", "keygen", str(key))
    assert gen.returncode == 0, gen.stderr
    assert key.stat().st_mode & 0o777 == 0o600
    pub = Path(f"{key}.pub")
    log_dir = tmp_path / "logs"
    out = tmp_path / "out"
    out.mkdir()
    env = audit_env(log_dir, ITSOP_AUDIT_SIGNING_KEY=str(key), ITSOP_AUDIT_CHECKPOINT_EVERY="5")
    ansible_playbook(PLAYBOOKS / "basic.yml", "-i", str(local_inventory(tmp_path)), "-e",
                     f"audit_test_dir={out}", env=env)
    log = only_log(log_dir)
    proc = sopctl("audit", "verify", str(log), "--public-key", str(pub))
    assert proc.returncode == 0 and "signatures verified" in proc.stdout, proc.stdout
    assert sum(r["type"] == "checkpoint" for r in records(log)) >= 4
    proc = sopctl("audit", "verify", str(log))
    assert proc.returncode == 0 and "signatures NOT checked" in proc.stdout
    other = tmp_path / "keys" / "other.pem"
    sopctl("audit", "keygen", str(other), check=True)
    proc = sopctl("audit", "verify", str(log), "--public-key", f"{other}.pub")
    assert proc.returncode == 1 and "not among the given public keys" in proc.stdout

    # the attacker edits a result and rebuilds the whole chain with the shared code, without the key
    from ansible_collections.itsop.change.plugins.module_utils import audit_chain as ac

    recs = records(log)
    forged = tmp_path / "forged.jsonl"
    w = ac.AuditWriter(forged, run_id=recs[0]["run_id"], checkpoint_every=0)
    for r in recs:
        if r["type"] == "checkpoint":
            continue
        body = {k: v for k, v in r.items() if k not in ac.RESERVED_FIELDS}
        if body.get("status") == "ok":
            body["changed"] = False
        w.append(body)
    w.close()
    assert sopctl("audit", "verify", str(forged)).returncode == 0  # a chain alone proves nothing
    proc = sopctl("audit", "verify", str(forged), "--public-key", str(pub))
    assert proc.returncode == 1 and "unsigned" in proc.stdout


# ------------------------------------------------------------------ kill -9 and signals

def _start_slow(tmp_path: Path, log_dir: Path) -> subprocess.Popen:
    env = audit_env(log_dir, ITSOP_AUDIT_FSYNC="always")
    return subprocess.Popen([str(VENV_BIN / "ansible-playbook"), str(PLAYBOOKS / "slow.yml"), "-i",
                             str(local_inventory(tmp_path))], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _wait_for_items(log_dir: Path, count: int, proc: subprocess.Popen, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the playbook ended before it could be interrupted"
        logs = list(log_dir.glob("*.jsonl"))
        if logs and logs[0].read_bytes().count(b'"status":"item_ok"') >= count:
            return logs[0]
        time.sleep(0.2)
    raise AssertionError("no item results appeared in the audit log")


def _stop(proc: subprocess.Popen, tmp_path: Path) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)
    # ansible's worker processes run in sessions of their own: a killed playbook leaves them behind
    subprocess.run(["pkill", "-KILL", "-f", str(tmp_path)], check=False)


def test_kill_9_mid_run_leaves_a_verifiable_prefix(tmp_path):
    log_dir = tmp_path / "logs"
    proc = _start_slow(tmp_path, log_dir)
    try:
        log = _wait_for_items(log_dir, 4, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        _stop(proc, tmp_path)
    res = json.loads(sopctl("audit", "verify", "--json", str(log)).stdout)["results"][0]
    assert res["status"] in ("incomplete", "torn_tail"), res
    assert res["records"] >= 8  # run_start .. the item results before the kill all verify
    proc_v = sopctl("audit", "verify", str(log))
    assert proc_v.returncode == 1
    if res["status"] == "incomplete":
        assert "no end-of-run checkpoint" in proc_v.stdout
    # a kill that lands inside write(2) cuts the last line: simulate its shape on the real log
    data = log.read_bytes()
    (tmp_path / "torn.jsonl").write_bytes(data + data.splitlines(keepends=True)[-1][:57])
    torn = json.loads(sopctl("audit", "verify", "--json", str(tmp_path / "torn.jsonl")).stdout)["results"][0]
    assert torn["status"] == "torn_tail" and torn["records"] == res["records"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interruption_is_recorded_and_the_log_ends_cleanly(tmp_path, signum):
    log_dir = tmp_path / "logs"
    proc = _start_slow(tmp_path, log_dir)
    try:
        log = _wait_for_items(log_dir, 2, proc)
        os.kill(proc.pid, signum)
        proc.wait(timeout=60)
    finally:
        _stop(proc, tmp_path)
    verify = sopctl("audit", "verify", str(log))
    assert verify.returncode == 0, verify.stdout
    recs = records(log)
    interrupted = [r for r in recs if r["type"] == "interrupted"]
    assert [r["signal"] for r in interrupted] == [signal.Signals(signum).name]
    assert recs[-1]["type"] == "checkpoint" and recs[-1]["final"] is True
    assert "INTERRUPTED by" in sopctl("audit", "show", str(log)).stdout


# ------------------------------------------------------------------ secrets

def test_planted_secrets_never_reach_any_log_file(tmp_path):
    vault_pass = tmp_path / "vault-pass"
    vault_pass.write_text("correct horse battery staple\n")
    vault_pass.chmod(0o600)
    enc = run([str(VENV_BIN / "ansible-vault"), "encrypt_string", "--vault-password-file", str(vault_pass),
               "--name", "vault_db_password", SENTINEL])
    assert "$ANSIBLE_VAULT" in enc.stdout and SENTINEL not in enc.stdout
    inv_dir = tmp_path / "inv"
    (inv_dir / "group_vars").mkdir(parents=True)
    (inv_dir / "group_vars" / "all.yml").write_text("---\n" + enc.stdout)
    local_inventory(inv_dir)
    log_dir = tmp_path / "logs"
    out = tmp_path / "out"
    out.mkdir()
    env = audit_env(log_dir, ITSOP_AUDIT_FSYNC="always", ITSOP_AUDIT_CHECKPOINT_EVERY="3")
    proc = ansible_playbook(PLAYBOOKS / "secrets.yml", "-i", str(inv_dir / "inventory.json"), "-vvvv",
                            "--diff", "--vault-password-file", str(vault_pass), "-e", f"audit_test_dir={out}",
                            "-e", f"extra_db_password={SENTINEL}", env=env, check=False)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the secret was really decrypted and used (so its absence below means something)
    assert (out / "audit-a-secret.txt").read_text().strip() == SENTINEL
    assert SENTINEL in proc.stdout  # debug var= prints it on the console at -vvvv
    files = [p for p in log_dir.rglob("*") if p.is_file()]
    assert files, "no audit log written"
    for path in files:
        data = path.read_bytes()
        assert SENTINEL.encode() not in data, path
        assert b"correct horse" not in data, path
    log = only_log(log_dir)
    assert sopctl("audit", "verify", str(log)).returncode == 0
    recs = records(log)
    results = [r for r in recs if r["type"] == "result"]
    no_log = [r for r in results if r.get("no_log")]
    assert {r["task"]["name"] for r in no_log} >= {
        "Use the vaulted secret in a no_log task", "Failing no_log command that carries the secret",
        "Loop over secret items with no_log", "Failing no_log task ends the play"}
    assert all("result" not in r and "diff" not in r for r in no_log)
    assert {r["status"] for r in no_log} >= {"failed", "ok", "item_ok"}
    labelled = [r for r in results if r["task"]["name"] == "Loop over secret items hidden by a label"
                and r["status"] == "item_ok"]
    assert [r["item"] for r in labelled] == ["first", "first"]
    fact = next(r for r in results if r["task"]["name"] == "Secret under a secret-looking fact name")
    assert fact["result"]["ansible_facts"]["app_token"] == "VALUE_REDACTED"


def _encrypt(vault_pass: Path, name: str, value: str) -> str:
    enc = run([str(VENV_BIN / "ansible-vault"), "encrypt_string", "--vault-password-file", str(vault_pass),
               "--name", name, value])
    assert "$ANSIBLE_VAULT" in enc.stdout and value not in enc.stdout
    return enc.stdout


def test_vaulted_values_are_redacted_wherever_they_travel(tmp_path):
    """Issue 15 class 4: a vaulted value under a harmless name reaches module_args, set_fact
    results, loop items, command output and task names; none of it may reach the log."""
    secret = "Vt-" + SENTINEL
    cert_lines = ["CERTLINE-one-" + SENTINEL[:8], "CERTLINE-two-" + SENTINEL[-8:]]
    runtime = "Rt-" + SENTINEL[::-1]
    vault_pass = tmp_path / "vault-pass"
    vault_pass.write_text("correct horse battery staple\n")
    inv_dir = tmp_path / "inv"
    (inv_dir / "group_vars").mkdir(parents=True)
    (inv_dir / "group_vars" / "all.yml").write_text(
        "---\n" + _encrypt(vault_pass, "db_conn_value", secret)
        + _encrypt(vault_pass, "db_cert_value", "\n".join(cert_lines)))
    file_secret = "Fv-" + SENTINEL.upper()
    (inv_dir / "host_vars").mkdir()
    host_file = inv_dir / "host_vars" / "audit-a.yml"
    host_file.write_text("---\nfile_vault_value: " + file_secret + "\n")
    run([str(VENV_BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(vault_pass), str(host_file)])
    runtime_file = tmp_path / "runtime.yml"
    runtime_file.write_text("---\nruntime_value: " + runtime + "\n")
    run([str(VENV_BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(vault_pass), str(runtime_file)])
    assert runtime not in runtime_file.read_text()
    local_inventory(inv_dir, hosts=("audit-a",))
    log_dir = tmp_path / "logs"
    out = tmp_path / "out"
    out.mkdir()
    proc = ansible_playbook(PLAYBOOKS / "vault_travel.yml", "-i", str(inv_dir / "inventory.json"), "-v",
                            "--vault-password-file", str(vault_pass), "-e", f"audit_test_dir={out}",
                            "-e", f"audit_runtime_vars={runtime_file}", env=audit_env(log_dir), check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the values were really decrypted and used
    assert (out / "audit-a-conn.txt").read_text().strip() == f"conn=db://app:{secret}@db"
    assert f"runtime {runtime}!" in proc.stdout
    log = only_log(log_dir)
    data = log.read_text()
    assert f"file {file_secret}." in proc.stdout
    for plain in [secret, runtime, file_secret, *cert_lines]:
        assert plain not in data, plain
    assert sopctl("audit", "verify", str(log)).returncode == 0
    results = {r["task"]["name"]: r for r in records(log) if r["type"] == "result" and r["status"] == "ok"}
    args = results["Concatenated into a module argument"]["result"]["invocation"]["module_args"]
    assert args["line"] == "conn=db://app:VALUE_REDACTED@db"  # the rest of the record is kept
    facts = results["Nested and concatenated in set_fact"]["result"]["ansible_facts"]
    assert facts["app_conn"] == "xVALUE_REDACTEDy"
    assert facts["app_nested"] == {"level1": ["VALUE_REDACTED", {"inner": "pre-VALUE_REDACTED"}]}
    assert "Task name carries VALUE_REDACTED" in results
    assert results["Task name carries VALUE_REDACTED"]["result"]["msg"] == "message xVALUE_REDACTEDy"
    runtime_rec = results["Value from the runtime vault file used in an argument"]
    assert runtime_rec["result"]["msg"] == "runtime VALUE_REDACTED!"
    assert results["Value from a whole-file vault in host_vars"]["result"]["msg"] == "file VALUE_REDACTED."
    items = [r for r in records(log) if r["type"] == "result" and r["status"] == "item_ok"
             and r["task"]["name"] == "In loop items and command output"]
    assert sorted(r["item"] for r in items) == ["VALUE_REDACTED", "plain"]
    assert any(r["result"]["stdout"] == "item-VALUE_REDACTED" for r in items)


# ------------------------------------------------------------------ a real managed host

@pytest.mark.integration
def test_run_against_a_systemd_container_is_recorded(testhost, tmp_path):
    log_dir = tmp_path / "logs"
    inv = testhost.inventory(tmp_path)
    ansible_playbook(PLAYBOOKS / "basic.yml", "-i", str(inv), "-e", "audit_test_dir=/tmp", "--diff",
                     env=audit_env(log_dir, ITSOP_CHANGE_ID="CR-9", ITSOP_STAGE="4"))
    log = only_log(log_dir)
    assert sopctl("audit", "verify", str(log)).returncode == 0
    results = [r for r in records(log) if r["type"] == "result"]
    assert {r["host"] for r in results} == {testhost.name}
    change = next(r for r in results if r["task"]["name"] == "Make a change")
    assert change["changed"] and change["diff"][0]["after"] == f"line {testhost.name}\n"
    assert testhost.exec("cat", f"/tmp/{testhost.name}.txt").stdout == f"line {testhost.name}\n"


# ------------------------------------------------------------------ sopctl usage errors

def test_sopctl_audit_usage_errors_exit_2(tmp_path):
    assert sopctl("audit", "verify").returncode == 2  # missing PATH
    assert sopctl("audit").returncode == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = sopctl("audit", "verify", str(empty))
    assert proc.returncode == 2 and "no audit logs" in proc.stderr
    proc = sopctl("audit", "verify", str(tmp_path / "missing.jsonl"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    junk_key = tmp_path / "junk.pub"
    junk_key.write_text("junk")
    log = tmp_path / "log.jsonl"
    log.write_text("")
    proc = sopctl("audit", "verify", str(log), "--public-key", str(junk_key))
    assert proc.returncode == 2 and "UNREADABLE" in proc.stdout
    key = tmp_path / "k.pem"
    assert sopctl("audit", "keygen", str(key)).returncode == 0
    proc = sopctl("audit", "keygen", str(key))
    assert proc.returncode == 2 and "refusing to overwrite" in proc.stderr
    assert sopctl("audit", "keygen", str(key), "--force").returncode == 0
