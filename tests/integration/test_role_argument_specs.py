"""The role contract (issue 22): every structured role input is checked by the role's argument spec.

One ``ansible-playbook`` run against aliases of the controller itself (``connection: local``, no
containers, no SSH): each inventory host is one case and includes one role with that case's variables.
Every case sets ``<role>_enabled: false``, so even a passing validation runs none of the role's real
tasks (they are reported as skipped).

* a bad value (wrong type, unknown choice or key, missing required nested key) is refused by the task
  ``Validating arguments against arg spec`` with a message naming the option, and the host gets no
  further task: not the role's first task (not even as skipped), not the marker task after the role;
* good input passes the validation, the role's tasks are reached (skipped) and the marker runs;
* validate, monitor and backup read the change from ``<role>_change`` (default ``itsop_change``) and
  a per-option variable still overrides what is derived from it.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO, ansible_playbook, base_env

CHANGE: dict[str, Any] = yaml.safe_load(
    (REPO / "docs" / "examples" / "change-requests" / "security-patch-1.1.0.yml").read_text())
VALIDATION = "Validating arguments against arg spec"
MARKER = "Marker after the role"
SECRET_URL = "https://hooks.example.invalid/services/T000/SECRET-TOKEN-42"
SHA = "sha256:" + "ab" * 32


def change(**changes: Any) -> dict[str, Any]:
    """The example change request with top-level sections replaced."""
    data = copy.deepcopy(CHANGE)
    data.update(changes)
    return data


def with_checks(functional: list[dict[str, Any]]) -> dict[str, Any]:
    """The example change's test plan with other functional checks."""
    return {**CHANGE["test_plan"], "functional": functional}

# Refused cases: id -> (role, variables, words the failure message must contain).
BAD: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "validate-unknown-check-type": (
        "validate", {"validate_functional_checks": [{"type": "ping", "name": "x"}]},
        ["validate_functional_checks", "type", "ping"]),
    "validate-check-missing-key-of-its-type": (
        "validate", {"validate_functional_checks": [{"type": "port"}]},
        ["validate_functional_checks", "type is port", "missing: port"]),
    "validate-check-without-type": (
        "validate", {"validate_functional_checks": [{"name": "itsop-demo-web", "state": "running"}]},
        ["validate_functional_checks", "missing required arguments: type"]),
    "validate-check-wrong-type": (
        "validate", {"validate_functional_checks": [{"type": "port", "port": "eighty"}]},
        ["validate_functional_checks", "'port'", "int"]),
    "validate-check-unknown-key": (
        "validate", {"validate_functional_checks": [{"type": "http", "url": "http://127.0.0.1/", "body_contain": "x"}]},
        ["validate_functional_checks", "body_contain"]),
    "validate-check-unknown-state": (
        "validate", {"validate_functional_checks": [{"type": "service", "name": "cron", "state": "up"}]},
        ["validate_functional_checks", "state", "running, stopped"]),
    "validate-bad-check-from-itsop-change": (
        "validate", {"itsop_change": change(test_plan=with_checks([{"type": "http", "status": 200}]))},
        ["validate_functional_checks", "type is http", "missing: url"]),
    "validate-bad-check-from-validate-change": (
        "validate",
        {"validate_change": change(test_plan=with_checks([{"type": "command", "command": ["id"]},
                                                          {"type": "command"}]))},
        ["validate_functional_checks", "type is command", "missing: command"]),
    "validate-change-not-a-dict": (
        "validate", {"validate_change": "CHG-2026-0042"},
        ["validate_change", "dict"]),
    "validate-standard-rule-missing-path": (
        "validate", {"validate_config_standard": [{"id": "R1", "check": "file_mode", "max_mode": "0644"}]},
        ["validate_config_standard", "check is file_mode", "missing: path"]),
    "validate-standard-rule-unknown-check": (
        "validate", {"validate_config_standard": [{"id": "R1", "check": "open_ports"}]},
        ["validate_config_standard", "check", "open_ports"]),
    "monitor-threshold-unknown-key": (
        "monitor", {"monitor_thresholds": {"availability": 99}},
        ["monitor_thresholds", "availability"]),
    "monitor-threshold-wrong-type": (
        "monitor", {"monitor_thresholds": {"max_restarts": "many"}},
        ["monitor_thresholds", "max_restarts", "int"]),
    "monitor-bad-threshold-from-itsop-change": (
        "monitor",
        {"itsop_change": change(monitoring={**CHANGE["monitoring"], "thresholds": {"p95_latency_ms": "slow"}})},
        ["monitor_thresholds", "p95_latency_ms", "float"]),
    "monitor-webhook-without-url": (
        "monitor", {"monitor_webhooks": [{"format": "slack", "name": "ops"}]},
        ["monitor_webhooks", "missing required arguments: url"]),
    "monitor-webhook-unknown-format": (
        "monitor", {"monitor_webhooks": [{"url": SECRET_URL, "format": "email"}]},
        ["monitor_webhooks", "format", "email"]),
    "monitor-change-not-a-dict": (
        "monitor", {"monitor_change": ["CHG-2026-0042"]},
        ["monitor_change", "dict"]),
    "backup-change-not-a-dict": (
        "backup", {"backup_change": "CHG-2026-0042"},
        ["backup_change", "dict"]),
    "backup-unknown-compression": (
        "backup", {"backup_compression": "lzma"},
        ["backup_compression", "lzma"]),
    "backup-paths-not-a-list": (
        "backup", {"backup_paths": {"/etc": True}},
        ["backup_paths", "list"]),
    "plan-package-without-version": (
        "plan", {"itsop_change": CHANGE, "plan_packages": [{"name": "itsop-demo-web"}]},
        ["plan_packages", "missing required arguments: version"]),
    "plan-downtime-unknown-key": (
        "plan", {"itsop_change": CHANGE, "plan_downtime_model": {"base": 30}},
        ["plan_downtime_model", "base"]),
    "plan-downtime-wrong-type": (
        "plan", {"itsop_change": CHANGE, "plan_downtime_model": {"reboot_seconds": "long"}},
        ["plan_downtime_model", "reboot_seconds", "float"]),
    "artifact-without-name": (
        "artifact_verify", {"artifact_verify_artifacts": [{"src": "/tmp/app.deb", "digest": SHA}]},
        ["artifact_verify_artifacts", "missing required arguments: name"]),
    "artifact-src-and-url": (
        "artifact_verify",
        {"artifact_verify_artifacts": [{"name": "app.deb", "src": "/tmp/app.deb", "url": "https://x.invalid/app.deb",
                                        "digest": SHA}]},
        ["artifact_verify_artifacts", "mutually exclusive", "src|url"]),
    "artifact-no-source": (
        "artifact_verify", {"artifact_verify_artifacts": [{"name": "app.deb", "digest": SHA}]},
        ["artifact_verify_artifacts", "one of the following is required: src, url"]),
    "artifact-download-without-digest": (
        "artifact_verify", {"artifact_verify_artifacts": [{"name": "app.deb", "url": "https://x.invalid/app.deb"}]},
        ["artifact_verify_artifacts", "required by 'url'", "digest"]),
    "artifact-clamav-unknown-scanner": (
        "artifact_verify", {"artifact_verify_clamav": {"scanner": "clamd"}},
        ["artifact_verify_clamav", "scanner", "clamd"]),
    "artifact-clamav-unknown-key": (
        "artifact_verify", {"artifact_verify_clamav": {"database": "/var/lib/clamav", "max_file_size": "1M"}},
        ["artifact_verify_clamav", "max_file_size"]),
    "update-package-without-version": (
        "update", {"itsop_change": CHANGE, "update_packages": [{"name": "itsop-demo-web"}]},
        ["update_packages", "missing required arguments: version"]),
    "update-config-file-without-source": (
        "update", {"itsop_change": CHANGE, "update_config_files": [{"dest": "/etc/app.ini", "mode": "0640"}]},
        ["update_config_files", "one of the following is required: template, content"]),
    "update-config-file-template-and-content": (
        "update", {"itsop_change": CHANGE,
                   "update_config_files": [{"dest": "/etc/app.ini", "template": "app.ini.j2", "content": "x"}]},
        ["update_config_files", "mutually exclusive", "template|content"]),
    "update-artifact-wrong-type": (
        "update", {"itsop_change": CHANGE, "update_artifacts": [{"name": "app.deb", "install": "perhaps"}]},
        ["update_artifacts", "install", "bool"]),
    "rollback-package-without-name": (
        "rollback", {"itsop_change": CHANGE, "rollback_packages": [{"version": "1.0.0"}]},
        ["rollback_packages", "missing required arguments: name"]),
    "demo-app-port-wrong-type": (
        "demo_app", {"demo_app_port": "eighty"},
        ["demo_app_port", "int"]),
}

# Accepted cases: id -> (role, variables). Every role has at least one.
GOOD: dict[str, tuple[str, dict[str, Any]]] = {
    "validate-from-itsop-change": ("validate", {
        "itsop_change": CHANGE,
        "validate_config_standard": [
            {"id": "R1", "check": "file_mode", "path": "/etc/passwd", "max_mode": "0644", "owner": "root",
             "group": ["root"], "required": True, "severity": "high", "title": "passwd"},
            {"id": "R2", "check": "sshd_option", "key": "permitrootlogin", "allowed": ["no", "prohibit-password"]},
            {"id": "R3", "check": "forbidden_ports", "ports": [23, "69/udp"]}]}),
    "monitor-from-itsop-change": ("monitor", {
        "itsop_change": CHANGE,
        "monitor_webhooks": [{"url": SECRET_URL, "format": "slack", "name": "ops"}, {"url": SECRET_URL}]}),
    "backup-from-itsop-change": ("backup", {"itsop_change": CHANGE}),
    "plan-from-itsop-change": ("plan", {
        "itsop_change": CHANGE, "plan_downtime_model": {"base_seconds": 10, "reboot_seconds": 120.5}}),
    "artifact-verify-good-list": ("artifact_verify", {
        "artifact_verify_artifacts": [
            {"name": "app.deb", "src": "/tmp/app.deb", "digest": SHA, "size": 10, "checksum_file": "/tmp/SHA256SUMS"},
            {"name": "tool.tar.gz", "url": "https://x.invalid/tool.tar.gz", "digest": SHA,
             "signature_url": "https://x.invalid/tool.tar.gz.asc", "gpg_fingerprints": ["A" * 40]}],
        "artifact_verify_clamav": {"database": "/var/lib/clamav", "scanner": "clamscan", "max_files": 100}}),
    "update-from-itsop-change": ("update", {
        "itsop_change": change(items={
            "packages": [{"name": "itsop-demo-web", "version": "1.1.0", "service": "itsop-demo-web",
                          "services": ["itsop-demo-web"]}],
            "artifacts": [{"name": "app.deb", "source": "/srv/app.deb", "sha256": "ab" * 32, "install": True,
                           "package": "app", "version": "1.0"}],
            "config_files": [{"dest": "/etc/itsop-demo-web/config.ini", "template": "config.ini.j2", "mode": "0640",
                              "service": "itsop-demo-web"}]})}),
    "rollback-explicit-packages": ("rollback", {
        "itsop_change": CHANGE,
        "rollback_packages": [{"name": "itsop-demo-web", "version": "1.0.0"}, {"name": "extra", "version": None}]}),
    "demo-app-defaults": ("demo_app", {}),
}

# The <role>_change contract: id -> (role, variables, expected values of the derived variables).
OTHER_CHECKS = [{"type": "port", "port": 9090}]
OTHER_MONITORING = {"duration_seconds": 7, "interval_seconds": 2, "http_url": "http://127.0.0.1:9090/",
                    "service": "other", "thresholds": {"max_restarts": 1}, "auto_rollback": False}
DERIVED: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "validate-reads-itsop-change": ("validate", {"itsop_change": CHANGE}, {
        "validate_change": CHANGE,
        "validate_functional_checks": CHANGE["test_plan"]["functional"],
        "validate_config_files": CHANGE["test_plan"]["security"]["config_files"]}),
    "validate-change-wins-over-itsop-change": ("validate", {
        "itsop_change": CHANGE, "validate_change": change(test_plan={"functional": OTHER_CHECKS})}, {
        "validate_functional_checks": OTHER_CHECKS, "validate_config_files": []}),
    "validate-option-overrides-the-change": ("validate", {
        "validate_change": CHANGE, "validate_functional_checks": OTHER_CHECKS, "validate_declared_ports": [9090]}, {
        "validate_functional_checks": OTHER_CHECKS, "validate_declared_ports": [9090],
        "validate_config_files": CHANGE["test_plan"]["security"]["config_files"]}),
    "validate-without-a-change": ("validate", {}, {
        "validate_change": {}, "validate_functional_checks": [], "validate_testinfra_files": []}),
    "monitor-reads-itsop-change": ("monitor", {"itsop_change": CHANGE}, {
        "monitor_duration_seconds": CHANGE["monitoring"]["duration_seconds"],
        "monitor_http_url": CHANGE["monitoring"]["http_url"],
        "monitor_thresholds": CHANGE["monitoring"]["thresholds"],
        "monitor_auto_rollback": CHANGE["monitoring"]["auto_rollback"]}),
    "monitor-change-wins-over-itsop-change": ("monitor", {
        "itsop_change": CHANGE, "monitor_change": change(monitoring=OTHER_MONITORING)}, {
        "monitor_duration_seconds": 7, "monitor_interval_seconds": 2, "monitor_service": "other",
        "monitor_thresholds": {"max_restarts": 1}, "monitor_auto_rollback": False}),
    "monitor-option-overrides-the-change": ("monitor", {
        "monitor_change": CHANGE, "monitor_duration_seconds": 3, "monitor_thresholds": {"availability_pct": 50}}, {
        "monitor_duration_seconds": 3, "monitor_thresholds": {"availability_pct": 50},
        "monitor_service": CHANGE["monitoring"]["service"]}),
    "monitor-without-a-change": ("monitor", {}, {
        "monitor_duration_seconds": 60, "monitor_interval_seconds": 5, "monitor_http_url": "",
        "monitor_thresholds": {}, "monitor_auto_rollback": False}),
    "backup-reads-itsop-change": ("backup", {"itsop_change": CHANGE}, {
        "backup_extra_paths": CHANGE["backup"]["paths"], "backup_change_id": CHANGE["id"]}),
    "backup-change-wins-over-itsop-change": ("backup", {
        "itsop_change": CHANGE, "backup_change": change(id="CHG-2026-0777", backup={"paths": ["/srv/other"]})}, {
        "backup_extra_paths": ["/srv/other"], "backup_change_id": "CHG-2026-0777"}),
    "backup-options-override-the-change": ("backup", {
        "backup_change": CHANGE, "itsop_change_id": "CHG-2026-0001", "backup_extra_paths": []}, {
        "backup_extra_paths": [], "backup_change_id": "CHG-2026-0001"}),
    "backup-without-a-change": ("backup", {}, {"backup_extra_paths": [], "backup_change_id": "manual"}),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Any]:
    """Run every case in one playbook run; return {host: [(task name, result), ...]} and the raw output."""
    tmp: Path = tmp_path_factory.mktemp("argspecs")
    hosts: dict[str, dict[str, Any]] = {}
    for case, (role, variables, *_rest) in [*BAD.items(), *GOOD.items(), *DERIVED.items()]:
        probe = sorted(DERIVED[case][2]) if case in DERIVED else []
        hosts[case] = {"case_role": f"itsop.change.{role}", f"{role}_enabled": False,
                                  "case_probe": probe, **variables}
    inventory = {"all": {"hosts": hosts, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "itsop_evidence_dir": str(tmp / "evidence")}}}
    (tmp / "inventory.json").write_text(json.dumps(inventory))
    (tmp / "playbook.json").write_text(json.dumps([{
        "name": "Role argument specs", "hosts": "all", "connection": "local", "gather_facts": False,
        "tasks": [
            {"name": "Include the role of the case",
             "ansible.builtin.include_role": {"name": "{{ case_role }}", "public": True}},
            {"name": MARKER, "ansible.builtin.set_fact": {
                "case_values": "{{ dict(case_probe | zip(query('ansible.builtin.vars', *case_probe))) }}"}},
        ]}]))
    env = base_env(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOCALHOST_WARNING="False",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="False", ANSIBLE_FORKS="4")
    proc = ansible_playbook(tmp / "playbook.json", "-i", str(tmp / "inventory.json"), check=False, env=env,
                            timeout=600)
    try:
        out = json.loads(proc.stdout)
    except ValueError as err:
        raise AssertionError(f"ansible-playbook gave no JSON ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}") from err
    per_host: dict[str, list[tuple[str, dict[str, Any]]]] = {name: [] for name in hosts}
    for play in out["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                per_host[host].append((task["task"]["name"], result))
    return {"hosts": per_host, "stdout": proc.stdout, "stderr": proc.stderr, "rc": proc.returncode}


def role_results(run: dict[str, Any], case: str, role: str) -> list[tuple[str, dict[str, Any]]]:
    return [(name, result) for name, result in run["hosts"][case] if name.startswith(f"itsop.change.{role} : ")]


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_by_the_spec_before_any_task(run, case):
    role, _variables, words = BAD[case]
    results = role_results(run, case, role)
    assert results, f"{case}: role {role} was not reached\n{run['stderr'][-3000:]}"
    name, result = results[0]
    assert VALIDATION in name, f"{case}: the first task of role {role} is {name!r}, not the argument validation"
    assert result.get("failed") is True, f"{case}: validation passed: {result.get('msg')}"
    message = result["msg"]
    assert message.startswith("Validation of arguments failed"), message
    for word in words:
        assert word in message, f"{case}: {word!r} not in {message!r}"
    # nothing after the validation ran for this host: not the role's first task (not even skipped), not the marker
    assert len(results) == 1, f"{case}: role tasks after a refused validation: {[n for n, _ in results[1:]]}"
    assert MARKER not in [n for n, _ in run["hosts"][case]]


@pytest.mark.parametrize("case", sorted(GOOD))
def test_good_input_passes_the_spec(run, case):
    role, _variables = GOOD[case]
    results = role_results(run, case, role)
    assert results and VALIDATION in results[0][0], f"{case}: no argument validation for role {role}"
    assert not results[0][1].get("failed"), f"{case}: {results[0][1].get('msg')}"
    assert results[0][1]["msg"] == "The arg spec validation passed"
    # the role's tasks were reached and skipped (<role>_enabled: false): nothing ran on the host
    assert len(results) > 1 and all(r.get("skipped") for _, r in results[1:]), [n for n, _ in results]
    assert MARKER in [n for n, _ in run["hosts"][case]]


COVERED = ["artifact_verify", "backup", "demo_app", "monitor", "plan", "rollback", "update", "validate"]


def test_every_covered_role_has_a_good_and_a_bad_case():
    roles = {p.name for p in (REPO / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file()}
    assert set(COVERED) <= roles
    assert sorted({role for role, _ in GOOD.values()}) == COVERED
    assert sorted({role for role, _v, _w in BAD.values()}) == COVERED


def test_webhook_urls_stay_out_of_the_output(run):
    assert SECRET_URL not in run["stdout"] + run["stderr"]


@pytest.mark.parametrize("case", sorted(DERIVED))
def test_role_change_feeds_the_defaults_and_options_override_it(run, case):
    role, _variables, expected = DERIVED[case]
    results = role_results(run, case, role)
    assert results and results[0][1].get("msg") == "The arg spec validation passed", results[:1]
    marker = [r for n, r in run["hosts"][case] if n == MARKER]
    assert marker, f"{case}: the marker did not run"
    values = marker[0]["ansible_facts"]["case_values"]
    for name, value in expected.items():
        assert values[name] == value, f"{case}: {name} = {values[name]!r}, expected {value!r}"
