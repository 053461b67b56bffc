"""Unit tests for the security baseline comparison and the configuration-standard rules."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.itsop.change.plugins.module_utils.security_compare import (
    CompareError,
    compare,
    parse_declared_port,
    rule_paths,
    validate_rules,
)

REPO = Path(__file__).resolve().parents[2]
ANY4 = ".".join(["0"] * 4)  # the IPv4 wildcard address as a listener reports it

BASE = {
    "listening": [{"proto": "tcp", "address": ANY4, "port": 8080, "process": "python3"}],
    "services_enabled": ["itsop-demo-web.service", "cron.service"],
    "setuid_files": [{"path": "/usr/bin/passwd", "mode": "4755", "owner": "root", "group": "root",
                      "setuid": True, "setgid": False}],
    "world_writable": [],
    "uid0_accounts": ["root"],
    "sudoers": {"digest": "aa", "entries": ["root ALL=(ALL:ALL) ALL"]},
    "sshd": {"present": True, "config": {"permitrootlogin": "no", "x11forwarding": "no", "permitemptypasswords": "no"}},
    "files": {"/etc/app.ini": {"exists": True, "mode": "0640", "owner": "root", "group": "app", "sha256": "1"},
              "/etc/shadow": {"exists": True, "mode": "0640", "owner": "root", "group": "shadow"}},
}


def after(**changes):
    snap = copy.deepcopy(BASE)
    snap.update(changes)
    return snap


def ids(result):
    return [f["id"] for f in result["findings"]]


def test_identical_snapshots_pass_without_findings():
    result = compare(BASE, copy.deepcopy(BASE), config_files=["/etc/app.ini"])
    assert result["passed"] and result["findings"] == [] and result["baseline_compared"]


def test_new_undeclared_port_blocks_with_name_and_process():
    snap = after(listening=BASE["listening"] + [{"proto": "tcp", "address": ANY4, "port": 9090,
                                                 "process": "python3"}])
    result = compare(BASE, snap)
    assert not result["passed"]
    (finding,) = result["findings"]
    assert finding["id"] == "new-listening-port" and finding["subject"] == "9090/tcp"
    assert finding["severity"] == "high" and finding["blocking"]
    assert "9090/tcp" in result["blocking"][0] and "python3" in result["blocking"][0]


@pytest.mark.parametrize("declared", [9090, "9090", "9090/tcp", {"port": 9090, "proto": "tcp"}])
def test_declared_port_is_info_only(declared):
    snap = after(listening=BASE["listening"] + [{"proto": "tcp6", "address": "::", "port": 9090}])
    result = compare(BASE, snap, declared_ports=[declared])
    assert result["passed"] and ids(result) == ["new-port-declared"]


def test_declared_udp_does_not_cover_tcp():
    snap = after(listening=BASE["listening"] + [{"proto": "tcp", "address": ANY4, "port": 53}])
    assert not compare(BASE, snap, declared_ports=["53/udp"])["passed"]


def test_ipv4_and_ipv6_listener_of_same_port_is_not_new():
    snap = after(listening=BASE["listening"] + [{"proto": "tcp6", "address": "::", "port": 8080}])
    assert compare(BASE, snap)["findings"] == []


def test_closed_port_is_info():
    result = compare(BASE, after(listening=[]))
    assert result["passed"] and ids(result) == ["port-closed"]


def test_new_setuid_blocks_unless_declared():
    new = {"path": "/usr/local/bin/helper", "mode": "4755", "owner": "root", "group": "root",
           "setuid": True, "setgid": False}
    snap = after(setuid_files=BASE["setuid_files"] + [new])
    result = compare(BASE, snap)
    assert not result["passed"] and ids(result) == ["new-setuid-file"]
    assert "/usr/local/bin/helper" in result["blocking"][0]
    declared = compare(BASE, snap, declared_setuid=["/usr/local/bin/helper"])
    assert declared["passed"] and ids(declared) == ["new-setuid-declared"]


def test_setuid_mode_change_is_medium_and_not_blocking_at_high():
    changed = dict(BASE["setuid_files"][0], mode="4777")
    result = compare(BASE, after(setuid_files=[changed]))
    assert ids(result) == ["setuid-changed"] and result["passed"]
    assert not compare(BASE, after(setuid_files=[changed]), fail_on_severity="medium")["passed"]


def test_new_uid0_account_is_critical():
    result = compare(BASE, after(uid0_accounts=["root", "toor"]))
    assert result["findings"][0]["severity"] == "critical" and not result["passed"]


def test_world_writable_and_sudoers_additions_block():
    snap = after(world_writable=[{"path": "/etc/app.d/x", "mode": "0666", "type": "file"}],
                 sudoers={"digest": "bb", "entries": ["root ALL=(ALL:ALL) ALL", "app ALL=(ALL) NOPASSWD: ALL"]})
    result = compare(BASE, snap)
    assert set(ids(result)) == {"new-world-writable", "sudoers-changed"}
    assert all(f["blocking"] for f in result["findings"])
    (sudo,) = [f for f in result["findings"] if f["id"] == "sudoers-changed"]
    assert sudo["detail"]["added"] == ["app ALL=(ALL) NOPASSWD: ALL"]


def test_sudoers_removal_only_is_low():
    result = compare(BASE, after(sudoers={"digest": "cc", "entries": []}))
    assert result["passed"] and result["findings"][0]["severity"] == "low"


def test_sshd_setting_change_and_enabled_service():
    snap = after(sshd={"present": True, "config": {"permitrootlogin": "yes", "x11forwarding": "no",
                                                   "permitemptypasswords": "no"}},
                 services_enabled=BASE["services_enabled"] + ["telnet.socket"])
    result = compare(BASE, snap)
    assert set(ids(result)) == {"sshd-config-changed", "service-enabled"}
    assert result["passed"]  # medium findings only


def test_config_file_mode_owner_and_world_writable():
    files = dict(BASE["files"])
    files["/etc/app.ini"] = {"exists": True, "mode": "0666", "owner": "app", "group": "app", "sha256": "2"}
    result = compare(BASE, after(files=files), config_files=["/etc/app.ini"])
    assert set(ids(result)) == {"config-file-world-writable", "config-file-mode-changed",
                                "config-file-owner-changed", "config-file-content-changed"}
    assert not result["passed"]


def test_no_baseline_only_rules():
    rules = [{"id": "R1", "check": "uid0_accounts", "severity": "critical", "allowed": ["root"]}]
    result = compare(None, after(uid0_accounts=["root", "x"]), rules=rules)
    assert not result["baseline_compared"] and ids(result) == ["R1"]


def test_example_config_standard_is_valid_and_passes_on_a_sane_host():
    data = yaml.safe_load((REPO / "roles" / "validate" / "files" / "config_standard.example.yml").read_text())
    assert validate_rules(data["rules"]) == []
    assert "/etc/shadow" in rule_paths(data["rules"])
    files = {"/etc/passwd": {"exists": True, "mode": "0644", "owner": "root", "group": "root"},
             "/etc/shadow": {"exists": True, "mode": "0640", "owner": "root", "group": "shadow"},
             "/etc/sudoers": {"exists": True, "mode": "0440", "owner": "root", "group": "root"},
             "/etc/app.ini": {"exists": True, "mode": "0640", "owner": "root", "group": "app"}}
    snap = after(files=files)
    assert compare(None, snap, config_files=["/etc/app.ini"], rules=data["rules"])["findings"] == []
    # and each class of violation is caught by its rule
    bad = after(files=dict(files, **{"/etc/shadow": {"exists": True, "mode": "0644", "owner": "root",
                                                     "group": "shadow"}}),
                listening=BASE["listening"] + [{"proto": "tcp", "address": ANY4, "port": 23}],
                sudoers={"digest": "x", "entries": ["app ALL=(ALL) NOPASSWD: ALL"]},
                sshd={"present": True, "config": {"permitrootlogin": "yes", "permitemptypasswords": "no",
                                                  "x11forwarding": "no"}})
    result = compare(None, bad, rules=data["rules"])
    assert set(ids(result)) == {"DSKS-FS-02", "DSKS-NET-01", "DSKS-ACC-02", "DSKS-SSH-01"}
    assert not result["passed"]


def test_sshd_rules_skip_without_sshd():
    rules = [{"id": "S", "check": "sshd_option", "key": "permitrootlogin", "allowed": ["no"], "severity": "high"}]
    assert compare(None, after(sshd={"present": False, "config": {}}), rules=rules)["findings"] == []


def test_file_mode_rule_missing_file_only_when_required():
    rule = {"id": "F", "check": "file_mode", "path": "/etc/nope", "max_mode": "0600", "severity": "medium"}
    snap = after(files={"/etc/nope": {"exists": False}})
    assert compare(None, snap, rules=[rule])["findings"] == []
    assert ids(compare(None, snap, rules=[dict(rule, required=True)])) == ["F"]


@pytest.mark.parametrize("rule, message", [
    ({"id": "A", "check": "nope"}, "check 'nope'"),
    ({"id": "A", "check": "uid0_accounts", "severity": "urgent"}, "severity 'urgent'"),
    ({"check": "uid0_accounts"}, "has no id"),
    ({"id": "A", "check": "file_mode"}, "needs path"),
    ({"id": "A", "check": "sshd_option", "key": "x"}, "allowed list"),
    ({"id": "A", "check": "sudoers_forbidden", "pattern": "("}, "does not compile"),
    ({"id": "A", "check": "forbidden_ports", "ports": ["http"]}, "is not PORT"),
])
def test_bad_rules_are_named(rule, message):
    errors = validate_rules([rule])
    assert errors and message in errors[0]


def test_duplicate_rule_ids():
    errors = validate_rules([{"id": "A", "check": "no_world_writable"}, {"id": "A", "check": "no_world_writable"}])
    assert "duplicate id A" in errors[0]


@pytest.mark.parametrize("value", ["0", "70000", "80/sctp", "abc", True])
def test_bad_declared_ports(value):
    with pytest.raises(CompareError):
        parse_declared_port(value)


def test_unknown_severity_threshold():
    with pytest.raises(CompareError):
        compare(BASE, BASE, fail_on_severity="urgent")


# --- network device rules (config_required, config_forbidden) -------------------------------------

NETWORK_RULES = [
    {"id": "RTR-01", "check": "config_forbidden", "severity": "critical", "patterns": [r"^\s*password\s"]},
    {"id": "RTR-02", "check": "config_required", "severity": "high", "patterns": ["^log syslog"]},
    {"id": "RTR-03", "check": "config_required", "severity": "high",
     "patterns": ["^line vty$", r"^ access-class \S+$"]},
]


def test_network_rules_on_a_configuration():
    from ansible_collections.itsop.change.plugins.module_utils import security_compare as sc
    good = "hostname r1\nlog syslog informational\nline vty\n access-class MGMT\nexit\n"
    assert sc.compare(None, {"config": good}, rules=NETWORK_RULES)["passed"] is True
    bad = "hostname r1\npassword zebra\nline vty\nexit\n"
    result = sc.compare(None, {"config": bad}, rules=NETWORK_RULES)
    assert result["passed"] is False
    assert sorted(f["id"] for f in result["findings"]) == ["RTR-01", "RTR-02", "RTR-03"]
    assert "forbidden line 'password zebra'" in result["findings"][0]["title"]


def test_network_rules_are_not_applied_to_servers_nor_server_rules_to_devices():
    from ansible_collections.itsop.change.plugins.module_utils import security_compare as sc
    server_snapshot = {"listening": [], "services_enabled": []}
    assert sc.compare(None, server_snapshot, rules=NETWORK_RULES)["findings"] == []
    rules = [*NETWORK_RULES, {"id": "S1", "check": "forbidden_ports", "ports": [23]}]
    assert [r["id"] for r in sc.network_rules(rules)] == ["RTR-01", "RTR-02", "RTR-03"]
    assert [r["id"] for r in sc.server_rules(rules)] == ["S1"]


def test_network_rule_errors_name_the_rule():
    from ansible_collections.itsop.change.plugins.module_utils import security_compare as sc
    errors = sc.validate_rules([{"id": "R1", "check": "config_required"},
                                {"id": "R2", "check": "config_forbidden", "patterns": ["("]}])
    assert any("rules[0] (R1): config_required needs patterns" in e for e in errors)
    assert any("rules[1] (R2): pattern '(' does not compile" in e for e in errors)
