"""The demo's network scenarios (docs/demo.md, docs/network.md): three FRRouting routers (staging,
two production; eBGP full mesh) changed through sopctl like the servers.

  4. network: announce 198.51.100.0/24 - all six stages with confirm-or-revert, closed;
  5. network-staging: a change that removes the vty access list - the configuration standard stops
     it on the staging router, production untouched, cancelled;
  6. network-monitoring: a cap on the prefixes each BGP peer may send, rendered per router from a
     template, set to what the peers send today; during monitoring the staging site announces three
     new networks (routine), the production routers tear their peerings down (FRR: maximum prefixes
     reached) -> incidents, automatic rollback of both production routers to the byte-identical
     configuration saved in stage 2.

Used by scripts/demo_sop.py (class Demo); every line printed comes from sopctl, the routers or the
evidence files.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
NETWORK_CR = REPO / "docs" / "examples" / "change-requests" / "network-announce-198.51.100.0.yml"
ROUTERS = {"itsop-rtr-stg": "rtr-stg", "itsop-rtr-prd-1": "rtr-prd-1", "itsop-rtr-prd-2": "rtr-prd-2"}
PRODUCTION_ROUTERS = ["itsop-rtr-prd-1", "itsop-rtr-prd-2"]
SERVICE_NET = "198.51.100.0/24"


def start_routers(demo) -> dict[str, Any]:
    """The routers and their inventory groups (added to the demo's inventory)."""
    demo.head("Demo routers: FRRouting 8.4 (staging 1, production 2) in an eBGP full mesh on their own network")
    env = dict(demo.env, ITSOP_DEMO_PREFIX=demo.prefix, ITSOP_DEMO_LABEL=demo.label)
    demo.sh("bash", "scripts/demo-hosts", "routers-up", env=env, show=True)
    names = [demo.prefix + short for short in ROUTERS.values()]
    out = demo.sh("bash", "scripts/demo-hosts", "ssh-access", str(demo.work / "keys" / "demo_ssh"), *names,
                  env=env).stdout
    addrs = dict(line.split() for line in out.splitlines())
    demo.say("  CLI: account netops logs in to vtysh (network_cli, ansible_network_os=itsop.change.frr); "
             "host keys pinned in ~/.ssh/known_hosts (marked itsop-test-router)")
    # each router's BGP peers (the others of the full mesh): the variables of a change's template
    host = {name: {"ansible_host": addrs[demo.prefix + short], "network_template_vars": {"bgp_peers": sorted(
        address for other, address in addrs.items() if other != demo.prefix + short)}}
        for name, short in ROUTERS.items()}
    demo.router_addrs = {name: h["ansible_host"] for name, h in host.items()}
    device = {"ansible_connection": "ansible.netcommon.network_cli", "ansible_network_os": "itsop.change.frr",
              "ansible_user": "netops", "network_device_user": "root"}
    return {"routers": {"children": {
        "routers_staging": {"hosts": {"itsop-rtr-stg": host["itsop-rtr-stg"]}, "vars": device},
        "routers_production": {"hosts": {h: host[h] for h in PRODUCTION_ROUTERS}, "vars": device}}}}


def router(demo, name: str) -> str:
    return demo.prefix + ROUTERS[name]


def running(demo, name: str) -> bytes:
    return subprocess.run(["podman", "exec", router(demo, name), "vtysh", "-c", "show running-config"],
                          capture_output=True, check=True, env=demo.env).stdout


def routes(demo) -> dict[str, str]:
    out = {}
    for name in ROUTERS:
        table = json.loads(demo.on_container(router(demo, name), "vtysh", "-c", f"show ip route {SERVICE_NET} json"))
        out[name] = ",".join(sorted({r.get("protocol") for r in table.get(SERVICE_NET, [])})) or "-"
    return out


def show_routers(demo, title: str) -> dict[str, str]:
    now = {name: f"cfg {hashlib.sha256(running(demo, name)).hexdigest()[:12]}, {SERVICE_NET} via {via}"
           for name, via in routes(demo).items()}
    demo.say(f"  {title}: " + "; ".join(f"{h} {v}" for h, v in now.items()))
    return now


def network_cr(demo, change_id: str, title: str, lines: str | None, **changes: Any) -> Path:
    data = yaml.safe_load(NETWORK_CR.read_text())
    now = datetime.now(UTC)

    def local(moment: datetime) -> str:
        return moment.astimezone(demo.jakarta).isoformat(timespec="seconds")

    data.update({"id": change_id, "title": title, "description": f"{title} (DEMO change on the demo routers).",
                 "window": {"start": local(now - timedelta(minutes=5)), "end": local(now + timedelta(hours=2)),
                            "timezone": "Asia/Jakarta", "grace_minutes": 0}})
    if lines is not None:
        data["items"]["network_config"]["lines"] = lines
    data["execution"] = {"serial": 2, "max_fail_percentage": 0}
    data["monitoring"].update({"duration_seconds": 20, "interval_seconds": 2})
    data.update(changes)
    path = demo.work / "change-requests" / f"{change_id}.yml"
    path.write_text("# Form Permintaan Perubahan Sistem (DEMO, generated by scripts/demo_network.py)\n"
                    + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def scenario_network(demo) -> dict[str, Any]:
    cid = "CHG-2026-1104"
    demo.head(f"Scenario 4: {cid} routing change - announce {SERVICE_NET} from every router, all six stages")
    before = show_routers(demo, "before")
    path = network_cr(demo, cid, f"Announce the service network {SERVICE_NET}", NETWORK_LINES)
    demo.sopctl("budi", "validate", str(path))
    demo.sopctl("budi", "submit", str(path), "--inventory", str(demo.inventory))
    demo.say("  Tahap 1: the lines each router lacks, what they touch, the downtime estimate (nothing is sent)")
    demo.sopctl("eko", "run", cid, stream=True)
    demo.approve(cid, "plan", [("sari", "routing change approved (IT manager)"),
                               ("dewi", "no downtime expected (users)"),
                               ("agus", "risk high: routing; confirm-or-revert and staging first (security)")])
    demo.say("  Tahap 2-4: configuration backups + restore test on staging, the standard, staging first, "
             "confirm-or-revert in the window, validation")
    demo.sopctl("eko", "run", cid, stream=True)
    mid = show_routers(demo, "after stage 3")
    demo.approve(cid, "signoff", [("rina", "state checks passed (QA)"),
                                  ("agus", "the network standard holds on every router (security)"),
                                  ("dewi", "the service network answers (users)")])
    demo.sopctl("eko", "run", cid, stream=True)
    demo.close(cid, "change closed; no incident (IT manager)")
    after = show_routers(demo, "after")
    res = demo.finish(cid)
    res.update({"routers_before": before, "routers_after_stage3": mid, "hosts_now": after})
    return res


def scenario_network_staging(demo) -> dict[str, Any]:
    cid = "CHG-2026-1105"
    demo.head(f"Scenario 5: {cid} a change that removes the vty access list - stopped on the staging router")
    before = {name: running(demo, name) for name in ROUTERS}
    path = network_cr(demo, cid, "Open the router CLI to every address", "line vty\n no access-class MGMT\n",
                      risk="medium")
    staging = demo.stopped_in_staging(cid, path, "risk medium: management access")
    changed = [name for name in ROUTERS if running(demo, name) != before[name]]
    if staging["passed"] or changed:
        raise demo.error(f"the change that breaks the standard was not stopped: passed={staging['passed']}, "
                         f"routers changed: {changed}")
    demo.say("  every router still runs its configuration byte for byte; stage 3 stays closed")
    demo.sopctl("sari", "cancel", cid, "--reason", "breaks DSKS-RTR-03 (management access list)")
    res = demo.finish(cid)
    res.update({"staging_passed": staging["passed"], "hosts_now": show_routers(demo, "after")})
    return res


def prefixes_received(demo, name: str) -> dict[str, int]:
    """How many prefixes each BGP peer of the router sends it now (show bgp summary json)."""
    peers = json.loads(demo.on_container(router(demo, name), "vtysh", "-c", "show bgp summary json"))
    return {address: int(peer.get("pfxRcd") or 0) for address, peer in peers["ipv4Unicast"]["peers"].items()}


def scenario_network_monitoring(demo) -> dict[str, Any]:
    cid = "CHG-2026-1106"
    demo.head(f"Scenario 6: {cid} a prefix cap on every BGP peer - it breaks the production peerings "
              "during monitoring")
    today = max(n for name in PRODUCTION_ROUTERS for n in prefixes_received(demo, name).values())
    demo.say(f"  the engineer caps every peer at what the peers send today ({today} prefixes): no headroom; "
             "the template renders one line per peer of each router (inventory: network_template_vars)")
    path = network_cr(demo, cid, "Cap the prefixes each BGP peer may send", None,
                      items={"network_config": {"template": PREFIX_CAP_TEMPLATE, "vars": {"max_prefixes": today},
                                                "confirm_timeout": 120}},
                      monitoring={"duration_seconds": 30, "interval_seconds": 2, "auto_rollback": True,
                                  "thresholds": {"availability_pct": 100}},
                      risk="low", test_plan={"network": [{"type": "bgp_neighbor", "neighbor": "*",
                                                          "name": "every BGP session established"}]})
    demo.sopctl("budi", "submit", str(path), "--inventory", str(demo.inventory))
    demo.sopctl("eko", "run", cid, stream=True)
    demo.approve(cid, "plan", [("sari", "approved"), ("dewi", "no downtime"), ("agus", "risk low")])
    demo.sopctl("eko", "run", cid, stream=True)
    saved = {name: (demo.work / "backup-store" / cid / name / "network" / "running.cfg").read_bytes()
             for name in PRODUCTION_ROUTERS}
    demo.approve(cid, "signoff", [("rina", "passed"), ("agus", "standard holds"), ("dewi", "accepted")])
    stg = router(demo, "itsop-rtr-stg")

    def site_grows() -> None:
        time.sleep(14)  # stage 5 starts sampling within a few seconds; the period is 30 s
        demo.say(f"  .. the staging site grows: {', '.join(LAB_NETWORKS)} announced on itsop-rtr-stg "
                 "(routine, outside this change)")
        commands = [f"ip route {net} Null0" for net in LAB_NETWORKS] + ["router bgp", "address-family ipv4 unicast"]
        args = [arg for command in ["configure terminal", *commands, *(f"network {net}" for net in LAB_NETWORKS)]
                for arg in ("-c", command)]
        demo.on_container(stg, "vtysh", *args)

    demo.say("  Tahap 5: monitoring the routers (BGP sessions sampled every 2 s)")
    grower = threading.Thread(target=site_grows)
    grower.start()
    demo.sopctl("eko", "run", cid, stream=True, expect=(1,))
    grower.join()
    incidents = json.loads((demo.work / "sopctl-home" / "changes" / cid / "evidence" / "stage5"
                            / "incidents.json").read_text())["incidents"]
    for i in incidents:
        demo.say(f"  incident {i.get('id')} on {i.get('host')}: {str(i.get('what'))[:160]}; rollback "
                 f"succeeded={(i.get('rollback') or {}).get('succeeded')}")
    stg_address = demo.router_addrs["itsop-rtr-stg"]
    why = json.loads(demo.on_container(router(demo, "itsop-rtr-prd-2"), "vtysh", "-c",
                                       f"show bgp neighbor {stg_address} json"))[stg_address]
    demo.say(f"  itsop-rtr-prd-2, last reset of its session with itsop-rtr-stg: {why.get('lastNotificationReason')}")
    identical = {name: running(demo, name) == saved[name] for name in PRODUCTION_ROUTERS}
    demo.say(f"  running configuration byte-identical to the stage-2 backup: {identical}")
    if not all(identical.values()) or demo.status(cid)["state"] != "rolled_back":
        raise demo.error(f"{cid}: state {demo.status(cid)['state']}, byte-identical {identical}")
    res = demo.finish(cid)
    res.update({"byte_identical": identical, "hosts_now": show_routers(demo, "after the automatic rollback"),
                "prefix_cap": today, "peer_reset_reason": why.get("lastNotificationReason"),
                "incidents": [{"id": i.get("id"), "host": i.get("host"),
                               "rollback_succeeded": (i.get("rollback") or {}).get("succeeded")} for i in incidents]})
    return res


# every BGP peer of the router (its inventory's network_template_vars.bgp_peers) capped at max_prefixes
PREFIX_CAP_TEMPLATE = ("router bgp\n address-family ipv4 unicast\n{% for peer in bgp_peers %}\n"
                       "  neighbor {{ peer }} maximum-prefix {{ max_prefixes }}\n{% endfor %}\n")
LAB_NETWORKS = ["203.0.113.0/26", "203.0.113.64/26", "203.0.113.128/26"]
NETWORK_LINES = f"ip route {SERVICE_NET} Null0\nrouter bgp\n address-family ipv4 unicast\n  network {SERVICE_NET}\n"
SCENARIOS = {"network": scenario_network, "network-staging": scenario_network_staging,
             "network-monitoring": scenario_network_monitoring}
