"""A network change through the stage playbooks on real routers (scripts/demo-hosts routers-up):
plan, backup with the restore test on staging, staging first, confirm-or-revert in batches,
validation with the network standard, monitoring whose breach rolls back to the byte-identical
saved configuration, the rollback playbook; and a change that breaks the standard stopped in
staging. Every evidence file is checked against its schema (sopctl.evidence)."""

from __future__ import annotations

import datetime
import json
import shutil
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, ansible_playbook, evidence

pytestmark = pytest.mark.integration

PLAYBOOKS = REPO / "playbooks"
EXAMPLE = REPO / "docs" / "examples" / "change-requests" / "network-announce-198.51.100.0.yml"


def change(tmp: Path, change_id: str, **changes) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    now = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=7)))
    data["id"] = change_id
    data["window"] = {"start": (now - datetime.timedelta(hours=1)).isoformat(timespec="seconds"),
                      "end": (now + datetime.timedelta(hours=3)).isoformat(timespec="seconds"),
                      "timezone": "Asia/Jakarta"}
    data["monitoring"]["duration_seconds"] = 30
    for key, value in changes.items():
        data[key] = value
    path = tmp / f"{change_id}.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def wait_for_route(routers, name: str, prefix: str, seconds: int = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if prefix in json.loads(routers.vtysh(name, f"show ip route {prefix} json")):
            return True
        time.sleep(1)
    return False


def stage(playbook: str, inventory: Path, change_file: Path, evidence_dir: Path, *extra: str, check: bool = True):
    return ansible_playbook(PLAYBOOKS / playbook, "-i", str(inventory), "-e", f"itsop_change_file={change_file}",
                            "-e", f"itsop_evidence_dir={evidence_dir}", *extra, check=check, timeout=900)


# The announcement of the example, and a cap on the prefixes each BGP peer may send - rendered for each
# router from its own peers (inventory: network_template_vars.bgp_peers). The cap of 3 is what every
# peer sends once the service network is announced (the two other routers' loopbacks and the service
# network): no headroom, the fault this change brings along.
ANNOUNCE_AND_CAP = {
    "template": ("ip route 198.51.100.0/24 Null0\nrouter bgp\n address-family ipv4 unicast\n"
                 "  network 198.51.100.0/24\n{% for peer in bgp_peers %}\n"
                 "  neighbor {{ peer }} maximum-prefix {{ max_prefixes }}\n{% endfor %}\n"),
    "vars": {"max_prefixes": 3}, "confirm_timeout": 120}
LAB_NETWORKS = ["203.0.113.0/26", "203.0.113.64/26", "203.0.113.128/26"]


def test_a_routing_change_through_the_stages_and_a_monitoring_breach_rolled_back(routers, tmp_path):
    inventory = routers.inventory(tmp_path)
    cid = "CHG-2026-0051"
    chg = change(tmp_path, cid, items={"network_config": ANNOUNCE_AND_CAP})
    ev = tmp_path / "evidence"
    stg, prd1, prd2 = routers.names
    before = {name: routers.running_config(name) for name in routers.names}

    stage("stage1_plan.yml", inventory, chg, ev)
    plan = evidence(ev / "stage1" / "plan.json", "plan", cid)
    hosts = {h["host"]: h for h in plan["hosts"]}
    assert hosts[prd1]["network"]["commands"][0] == "ip route 198.51.100.0/24 Null0"
    assert hosts[prd1]["network"]["protocols"] == ["ip route", "router bgp"]
    assert "router bgp 65001" in hosts[prd1]["network"]["commands"]  # "router bgp" = the router's instance
    # the template rendered for each router: its own two peers
    assert [c for c in hosts[prd1]["network"]["commands"] if "maximum-prefix" in c] == [
        f"  neighbor {routers.addresses[n]} maximum-prefix 3" for n in sorted((stg, prd2), key=routers.addresses.get)]
    assert hosts[prd1]["network"]["neighbors"] == sorted((routers.addresses[stg], routers.addresses[prd2]))
    assert all(routers.running_config(n) == before[n] for n in routers.names), "stage 1 changed a router"

    # an inventory variable changed after the plan: the staging router would get lines nobody approved
    tampered, ev_tampered = routers.inventory(tmp_path, network_template_vars={"bgp_peers": ["10.0.0.66"]}), \
        tmp_path / "evidence-tampered"
    shutil.copytree(ev / "stage1", ev_tampered / "stage1")
    refused = stage("stage2_prepare.yml", tampered, chg, ev_tampered, check=False)
    reasons = evidence(ev_tampered / "stage2" / "staging.json", "staging", cid)["reasons"]
    assert refused.returncode != 0 and f"the configuration for {stg} now differs from the one planned in stage 1" \
        in reasons[0], reasons
    assert routers.running_config(stg) == before[stg], "a configuration that was not planned reached the router"

    stage("stage2_prepare.yml", inventory, chg, ev)
    for name in routers.names:
        checklist = evidence(ev / "stage2" / "backup" / name / "checklist.json", "backup", cid, name)
        assert [i["ok"] for i in checklist["items"]] == [True, True, True, True]
        saved = ev / "backup-store" / cid / name / "network" / "running.cfg"
        assert saved.read_bytes() == before[name]
    assert checklist["items"][3]["evidence"]["tested_on"] == [stg]
    staging = evidence(ev / "stage2" / "staging.json", "staging", cid)
    assert staging["staging_hosts"] == [stg]
    assert routers.running_config(prd1) == before[prd1], "stage 2 changed a production router"
    assert "198.51.100.0/24" in json.loads(routers.vtysh(prd1, "show ip route 198.51.100.0/24 json")), \
        "the staging router's announcement did not reach production"

    stage("stage3_execute.yml", inventory, chg, ev)
    for name in (prd1, prd2):
        run = evidence(ev / "stage3" / f"{name}.json", "execution", cid, name)
        assert run["network"]["confirmed"] is True and run["network"]["standard"]["passed"] is True
        diff = run["network"]["config_diff"]  # what the router made of the lines, before and after
        assert "\n+ip route 198.51.100.0/24 Null0\n" in diff and "\n+  network 198.51.100.0/24\n" in diff, diff
        assert diff.count(" maximum-prefix 3\n") == 2, diff
        assert not [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert evidence(ev / "stage3" / "summary.json", "execution_summary", cid)["failed"] == []

    stage("stage4_validate.yml", inventory, chg, ev)
    validated = evidence(ev / "stage4" / f"{prd1}.json", "functional_tests", cid, prd1)
    assert [c["passed"] for c in validated["functional"]] == [True] * 5
    assert {c["type"] for c in validated["functional"]} >= {"ospf_neighbor", "route_count"}
    security = evidence(ev / "stage4" / "security.json", "security_tests", cid)
    assert security["hosts"][prd1]["rules_evaluated"] == ["DSKS-RTR-01", "DSKS-RTR-02", "DSKS-RTR-03", "DSKS-RTR-04"]

    # during monitoring the site behind the staging router grows by three networks (routine, outside
    # this change): each production router now receives more prefixes than the change's cap allows and
    # tears its peerings down (FRR: Idle (PfxCt)); both sample it, raise an incident and roll back
    def break_peering():
        # as stage 5 starts: the sampling sees the sessions down (from its first sample or a later one,
        # as the machine's load decides; what is asserted does not depend on which)
        time.sleep(3)
        commands = [f"ip route {net} Null0" for net in LAB_NETWORKS] + ["router bgp", "address-family ipv4 unicast"]
        routers.vtysh(stg, "configure terminal", *commands, *(f"network {net}" for net in LAB_NETWORKS))

    breaker = threading.Thread(target=break_peering)
    breaker.start()
    proc = stage("stage5_golive.yml", inventory, chg, ev, check=False)
    breaker.join()
    assert proc.returncode != 0 and "Rolled back automatically" in proc.stdout
    incidents = evidence(ev / "stage5" / "incidents.json", "incidents", cid)
    assert {i["host"] for i in incidents["incidents"]} == {prd1, prd2}
    assert all(i["rollback"]["succeeded"] for i in incidents["incidents"])
    monitoring = evidence(ev / "stage5" / "monitoring.json", "monitoring", cid)
    for name in (prd1, prd2):  # the breach is the broken session, as sampled
        failed = [f for s in monitoring["hosts"][name]["samples"] for f in s["failed"]]
        assert any(f.startswith("every BGP session established: ") and f"{routers.addresses[stg]} Idle" in f
                   for f in failed), failed
    for name in (prd1, prd2):
        assert routers.running_config(name) == before[name], f"{name} is not back on its stage-2 configuration"
        # without the cap the sessions come back, the staging site's new networks with them
        routes = json.loads(routers.vtysh(name, f"show ip route {LAB_NETWORKS[0]} json"))
        assert LAB_NETWORKS[0] in routes or wait_for_route(routers, name, LAB_NETWORKS[0]), name
        rolled = evidence(ev / "rollback" / f"{name}.json", "rollback", cid, name)
        assert rolled["restore"]["byte_identical"] is True

    # the rollback playbook on the staging router: the same restore, byte for byte, and idempotent
    stage("rollback.yml", inventory, chg, ev, "-e", "rollback_hosts=itsop_staging")
    assert routers.running_config(stg) == before[stg]
    again = stage("rollback.yml", inventory, chg, ev, "-e", "rollback_hosts=itsop_staging")
    assert stg in again.stdout
    assert evidence(ev / "rollback" / f"{stg}.json", "rollback", cid, stg)["restore"]["changed"] is False


def test_a_change_that_breaks_the_standard_is_stopped_in_staging(routers, tmp_path):
    inventory = routers.inventory(tmp_path)
    cid = "CHG-2026-0052"
    items = {"network_config": {"lines": "line vty\n no access-class MGMT\n"}}
    chg, ev = change(tmp_path, cid, items=items), tmp_path / "evidence"
    stg = routers.names[0]
    before = routers.running_config(stg)
    stage("stage1_plan.yml", inventory, chg, ev)
    proc = stage("stage2_prepare.yml", inventory, chg, ev, check=False)
    assert proc.returncode != 0
    staging = evidence(ev / "stage2" / "staging.json", "staging", cid)
    assert staging["passed"] is False
    assert "DSKS-RTR-03" in staging["reasons"][0] and "breaks the configuration standard" in staging["reasons"][0]
    assert routers.running_config(stg) == before, "a configuration that breaks the standard reached the router"


def test_a_network_change_refuses_server_targets(routers, tmp_path):
    inventory = routers.inventory(tmp_path)
    inv = json.loads(inventory.read_text())
    inv["all"]["hosts"] = {"web-1": {"ansible_connection": "local"}}
    inventory.write_text(json.dumps(inv))
    chg = change(tmp_path, "CHG-2026-0053",
                 targets={"staging": ["routers_staging"], "production": ["routers_production", "web-1"]})
    proc = stage("stage1_plan.yml", inventory, chg, tmp_path / "ev", check=False)
    assert proc.returncode != 0
    assert "targets: web-1 are not network devices" in proc.stdout
