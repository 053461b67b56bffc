"""Network devices on real routers: FRRouting 8.4 in systemd containers (scripts/demo-hosts
routers-up: staging and two production routers in an eBGP full mesh), reached with
ansible.netcommon.network_cli and the collection's cliconf/terminal plugins ``itsop.change.frr``.

One estate per file (fixture routers, module scope); each test works on the router it names and
leaves it as it found it where later tests depend on that.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import RouterEstate, ansible_playbook, podman

pytestmark = pytest.mark.integration


def play(tmp: Path, routers: RouterEstate, host: str, tasks: list[dict], *, check: bool = True,
         extra: list[str] | None = None, play_vars: dict | None = None):
    """Run one play on ``host``; every task's registered result is written as JSON beside it."""
    book = [{"hosts": host, "gather_facts": False, "vars": play_vars or {}, "tasks": tasks}]
    path = tmp / f"play-{time.monotonic_ns()}.yml"
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    return ansible_playbook(path, "-i", str(routers.inventory(tmp)), *(extra or []), check=check)


def save(var: str, dest: Path) -> dict:
    return {"name": f"save {var}", "delegate_to": "localhost", "check_mode": False,
            "ansible.builtin.copy": {"content": "{{ " + var + " | to_json }}", "dest": str(dest)}}


def loaded(path: Path) -> dict:
    return json.loads(path.read_text())


LINES = "ip route 10.66.0.0/24 Null0\nrouter bgp {asn}\n address-family ipv4 unicast\n  network 10.66.0.0/24\n"


# --- the cliconf plugin through ansible.netcommon.cli_config ---------------------------------------


def test_cli_config_check_mode_diff_apply_and_idempotence(routers: RouterEstate, tmp_path: Path) -> None:
    stg = routers.names[0]
    before = routers.running_config(stg)
    config = LINES.format(asn=65000)
    task = {"ansible.netcommon.cli_config": {"config": config}, "register": "r"}
    play(tmp_path, routers, stg, [task, save("r", tmp_path / "check.json")], extra=["--check", "--diff"])
    checked = loaded(tmp_path / "check.json")
    assert checked["changed"] is True
    assert "network 10.66.0.0/24" in checked["diff"]["prepared"]
    assert routers.running_config(stg) == before, "check mode sent configuration to the router"

    play(tmp_path, routers, stg, [task, save("r", tmp_path / "apply.json")])
    assert loaded(tmp_path / "apply.json")["changed"] is True
    routes = json.loads(routers.vtysh(routers.names[1], "show ip route 10.66.0.0/24 json"))
    assert "10.66.0.0/24" in routes, "the staging router's new prefix did not reach production by BGP"

    play(tmp_path, routers, stg, [task, save("r", tmp_path / "again.json")])
    assert loaded(tmp_path / "again.json")["changed"] is False, "a second apply changed the router again"

    undo = "no ip route 10.66.0.0/24 Null0\nrouter bgp 65000\n address-family ipv4 unicast\n  no network 10.66.0.0/24\n"
    play(tmp_path, routers, stg, [{"ansible.netcommon.cli_config": {"config": undo, "diff_match": "none"}}])
    assert routers.running_config(stg) == before


def test_refused_line_fails_the_task(routers: RouterEstate, tmp_path: Path) -> None:
    stg = routers.names[0]
    proc = play(tmp_path, routers, stg, [{"ansible.netcommon.cli_config": {
        "config": "router bgp 65000\n neighbor 10.0.0.300 remote-as 1\n"}}], check=False)
    assert proc.returncode != 0
    assert "10.0.0.300" in proc.stdout and ("Unknown command" in proc.stdout or "Malformed" in proc.stdout
                                            or "Create the peer-group" in proc.stdout), proc.stdout[-2000:]


# --- network_check ---------------------------------------------------------------------------------


def test_network_check_reads_the_real_state(routers: RouterEstate, tmp_path: Path) -> None:
    prd1, prd2 = routers.names[1], routers.names[2]
    checks = [
        {"type": "bgp_neighbor", "neighbor": routers.addresses[prd2], "min_prefixes": 1},
        {"type": "bgp_neighbor", "neighbor": "192.0.2.99"},
        {"type": "route", "prefix": "192.0.2.2/32", "protocol": "bgp"},
        {"type": "route", "prefix": "198.51.100.0/24"},
        {"type": "config_contains", "line": "^line vty$", "regex": True},
        {"type": "config_lacks", "line": "ip route 10.89.0.1/32 blackhole"},
    ]
    play(tmp_path, routers, prd1, [{"itsop.change.network_check": {"checks": checks}, "register": "r"},
                                  save("r", tmp_path / "r.json")])
    result = loaded(tmp_path / "r.json")
    assert result["network_os"] == "frr"
    assert [r["passed"] for r in result["results"]] == [True, False, True, False, True, True]
    assert result["passed"] is False
    assert result["results"][1]["message"] == "neighbor 192.0.2.99 is not configured (expected Established)"


def test_network_check_refuses_malformed_checks(routers: RouterEstate, tmp_path: Path) -> None:
    proc = play(tmp_path, routers, routers.names[1], [{"itsop.change.network_check": {"checks": [
        {"type": "bgp_neighbor"}, {"type": "pingg", "host": "x"}, {"type": "ping", "destination": "-f"}]}}],
        check=False)
    assert proc.returncode != 0
    assert "checks[0] (bgp_neighbor): neighbor is required" in proc.stdout
    assert "checks[1]: type 'pingg' is not one of" in proc.stdout
    assert "checks[2] (ping): destination must be an IPv4 address" in proc.stdout
    # FRR's CLI cannot run a ping that stops: the module says where probes run instead of hanging
    proc = play(tmp_path, routers, routers.names[1], [{"itsop.change.network_check": {"checks": [
        {"type": "ping", "destination": "192.0.2.2"}]}}], check=False)
    assert proc.returncode != 0 and "ping and traceroute checks are not run through the CLI" in proc.stdout


# --- the network role: backup, confirm-or-revert, restore -------------------------------------------


def role(entry: str, **variables: object) -> dict:
    return {"ansible.builtin.include_role": {"name": "itsop.change.network", "tasks_from": entry}, "vars": variables}


def test_backup_confirmed_change_and_restore_byte_identical(routers: RouterEstate, tmp_path: Path) -> None:
    prd1 = routers.names[1]
    store = tmp_path / "store"
    base = {"network_change_id": "CHG-2026-7001", "network_store_dir": str(store)}
    before = routers.running_config(prd1)
    play(tmp_path, routers, prd1, [role("backup"), save("network_backup_result", tmp_path / "backup.json")],
         play_vars=base)
    backup = loaded(tmp_path / "backup.json")
    saved = store / "CHG-2026-7001" / prd1 / "network" / "running.cfg"
    assert saved.read_bytes() == before
    assert backup["sha256"]["running.cfg"] == hashlib.sha256(before).hexdigest()
    assert backup["reasons"] == []
    assert (store / "CHG-2026-7001" / prd1 / "network" / "startup.cfg").read_text().count("router bgp 65001") == 1

    checks = [{"type": "route", "prefix": "10.66.0.0/24", "protocol": "static"},
              {"type": "bgp_neighbor", "neighbor": routers.addresses[routers.names[2]]}]
    play(tmp_path, routers, prd1, [role("apply", network_config=LINES.format(asn=65001), network_checks=checks),
                                  save("network_apply_result", tmp_path / "apply.json")], play_vars=base)
    applied = loaded(tmp_path / "apply.json")
    assert applied["confirmed"] is True and applied["reasons"] == []
    assert [c["passed"] for c in applied["checks"]] == [True, True]
    timer = podman("exec", prd1, "systemctl", "is-active", "itsop-revert-CHG-2026-7001.timer", check=False)
    assert timer.stdout.strip() != "active", "the revert timer is still armed after the confirm"
    startup = podman("exec", prd1, "cat", "/etc/frr/frr.conf").stdout
    assert "network 10.66.0.0/24" in startup, "the confirm did not write the startup configuration"

    # idempotent: the same change again sends nothing and arms nothing
    play(tmp_path, routers, prd1, [role("apply", network_config=LINES.format(asn=65001), network_checks=checks),
                                  save("network_apply_result", tmp_path / "again.json")], play_vars=base)
    again = loaded(tmp_path / "again.json")
    assert again["changed"] is False and again["applied"] is False

    # rollback: the stage-2 backup goes back, byte for byte
    play(tmp_path, routers, prd1, [role("restore"), save("network_restore_result", tmp_path / "restore.json")],
         play_vars=base)
    restored = loaded(tmp_path / "restore.json")
    assert restored["reasons"] == [] and restored["changed"] is True
    assert routers.running_config(prd1) == before


def test_a_change_that_cuts_the_management_path_is_reverted_by_the_device(routers: RouterEstate,
                                                                          tmp_path: Path) -> None:
    """The change blackholes the controller's own address: the CLI session dies mid-apply, the
    controller cannot confirm, and the router returns to the saved configuration by itself."""
    prd2 = routers.names[2]
    controller = routers.gateway
    before = routers.running_config(prd2)
    started = time.monotonic()
    proc = play(tmp_path, routers, prd2, [{"block": [role(
        "apply", network_config=f"ip route {controller}/32 blackhole\n",
        network_checks=[{"type": "bgp_neighbor", "neighbor": routers.addresses[routers.names[1]]}])],
        "always": [save("network_apply_result", tmp_path / "apply.json")]}],
        check=False, play_vars={"network_change_id": "CHG-2026-7002", "network_confirm_timeout": 20,
                                "network_command_timeout": 6})
    assert proc.returncode != 0
    result = loaded(tmp_path / "apply.json")
    assert result["confirmed"] is False
    assert result["reverted_by"] == "device_timer", result
    assert result["reasons"] and "timeout" in result["reasons"][0]
    assert "not confirmed on" in proc.stdout and "byte-identical: True" in proc.stdout
    assert routers.running_config(prd2) == before
    assert time.monotonic() - started >= 20, "the play ended before the device's own revert could have fired"


def test_a_failed_state_check_is_reverted_by_the_controller_at_once(routers: RouterEstate, tmp_path: Path) -> None:
    prd2 = routers.names[2]
    before = routers.running_config(prd2)
    peer = routers.addresses[routers.names[1]]
    proc = play(tmp_path, routers, prd2, [{"block": [role(
        "apply", network_config=f"router bgp 65002\n neighbor {peer} shutdown\n",
        network_checks=[{"type": "bgp_neighbor", "neighbor": peer}])],
        "always": [save("network_apply_result", tmp_path / "apply.json")]}],
        check=False, play_vars={"network_change_id": "CHG-2026-7003", "network_confirm_timeout": 300})
    assert proc.returncode != 0
    result = loaded(tmp_path / "apply.json")
    assert result["applied"] is True and result["confirmed"] is False
    assert result["reverted_by"] == "controller"
    assert "state checks failed" in result["reasons"][0] and peer in result["reasons"][0]
    assert routers.running_config(prd2) == before


def test_reachability_ospf_and_route_counts_and_a_blackhole_the_ping_catches(routers: RouterEstate,
                                                                               tmp_path: Path) -> None:
    """Entry point checks reads OSPF and route counts through the CLI and sends the probes from the
    router's shell; a change that keeps every BGP session up but blackholes a loopback fails its ping
    and is reverted by the controller before it is confirmed."""
    prd1 = routers.names[1]
    stg_loopback, prd2_loopback = "192.0.2.10", "192.0.2.2"
    checks = [
        {"type": "ping", "destination": prd2_loopback, "source": "192.0.2.1"},
        {"type": "traceroute", "destination": stg_loopback, "source": "192.0.2.1", "via": [stg_loopback]},
        {"type": "ospf_neighbor", "neighbor": "*"},
        {"type": "route_count", "protocol": "bgp", "min_routes": 2},
        {"type": "route_count", "protocol": "static", "max_routes": 0},
    ]
    play(tmp_path, routers, prd1, [role("checks", network_checks=checks, network_change_id="CHG-2026-7005"),
                                  save("network_check_result", tmp_path / "checks.json")])
    result = loaded(tmp_path / "checks.json")
    assert result["reasons"] == [] and result["passed"] is True, result["reasons"]
    messages = [r["message"] for r in result["results"]]
    assert messages[0].startswith(f"ping {prd2_loopback}: 3 of 3 replies, 0.0% loss")
    assert messages[1] == f"traceroute {stg_loopback}: reached in 1 hop(s) ({stg_loopback})"
    assert messages[2] == "2 of 2 OSPF neighbors Full"
    assert messages[3] == "2 bgp routes" and messages[4] == "0 static routes"

    before = routers.running_config(prd1)
    proc = play(tmp_path, routers, prd1, [{"block": [role(
        "apply", network_config=f"ip route {prd2_loopback}/32 blackhole\n",
        network_checks=[{"type": "bgp_neighbor", "neighbor": "*"}, checks[0]])],
        "always": [save("network_apply_result", tmp_path / "apply.json")]}],
        check=False, play_vars={"network_change_id": "CHG-2026-7006", "network_confirm_timeout": 300})
    assert proc.returncode != 0
    applied = loaded(tmp_path / "apply.json")
    assert applied["applied"] is True and applied["confirmed"] is False and applied["reverted_by"] == "controller"
    assert [c["passed"] for c in applied["checks"]] == [True, False], applied["checks"]
    assert f"ping {prd2_loopback}: 0 of 3 replies" in applied["reasons"][0]
    assert routers.running_config(prd1) == before


def test_check_mode_arms_nothing_and_sends_nothing(routers: RouterEstate, tmp_path: Path) -> None:
    prd2 = routers.names[2]
    before = routers.running_config(prd2)
    play(tmp_path, routers, prd2, [role("apply", network_config="ip route 10.55.0.0/24 Null0\n"),
                                  save("network_apply_result", tmp_path / "r.json")],
         extra=["--check"], play_vars={"network_change_id": "CHG-2026-7004"})
    result = loaded(tmp_path / "r.json")
    assert result["changed"] is True and result["applied"] is False
    assert result["commands"] == ["ip route 10.55.0.0/24 Null0"]
    assert routers.running_config(prd2) == before


def test_an_unsupported_platform_is_refused_before_the_device_is_touched(routers: RouterEstate,
                                                                         tmp_path: Path) -> None:
    book = [{"hosts": "all", "gather_facts": False, "tasks": [role("apply", network_config="hostname x\n")]}]
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump(book))
    inventory = tmp_path / "inv.json"
    inventory.write_text(json.dumps({"all": {"hosts": {"edge-1": {
        "ansible_connection": "ansible.netcommon.network_cli", "ansible_network_os": "cisco.ios.ios",
        "ansible_host": "192.0.2.254"}}}}))
    proc = ansible_playbook(path, "-i", str(inventory), check=False)
    assert proc.returncode != 0
    assert "network platform ansible_network_os=cisco.ios.ios is not implemented" in proc.stdout
    assert "unreachable=0" in proc.stdout


def test_frr_checkpoint_refuses_to_confirm_what_is_not_armed(routers: RouterEstate, tmp_path: Path) -> None:
    shell = {"ansible_connection": "ansible.builtin.ssh", "ansible_user": "root"}
    proc = play(tmp_path, routers, routers.names[0], [{"itsop.change.frr_checkpoint": {
        "checkpoint": "CHG-2026-7005", "state": "confirmed"}, "vars": shell}], check=False)
    assert proc.returncode != 0 and "no revert timer is armed for CHG-2026-7005" in proc.stdout
    proc = play(tmp_path, routers, routers.names[0], [{"itsop.change.frr_checkpoint": {
        "checkpoint": "../etc/x", "state": "saved"}, "vars": shell}], check=False)
    assert proc.returncode != 0 and "checkpoint '../etc/x': only letters" in proc.stdout
