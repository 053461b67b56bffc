"""Network state checks (module_utils/_network): option errors, evaluation, the FRR JSON parsers."""

from __future__ import annotations

import json

import pytest

from ansible_collections.itsop.change.plugins.module_utils._network import checks, frr

FACTS = {
    "neighbors": {"10.0.0.2": {"state": "Established", "prefixes_received": 3, "names": ["r2"]},
                  "10.0.0.3": {"state": "Active", "prefixes_received": 0, "names": ["r3", "edge r3"]}},
    "routes": {"192.0.2.2/32": ["bgp"], "10.0.0.0/24": ["connected"]},
    "config": "hostname r1\n!\nrouter bgp 65001\n neighbor 10.0.0.2 remote-as 65002\nexit\n",
    "ospf_neighbors": {"192.0.2.2": {"state": "Full/DR", "address": "10.0.0.2", "interface": "eth0:10.0.0.1"},
                       "192.0.2.3": {"state": "Init/DROther", "address": "10.0.0.3", "interface": "eth0:10.0.0.1"}},
    "route_counts": {"connected": 2, "ebgp": 2, "ibgp": 0, "bgp": 2, "total": 5},
    "probes": {
        "ping 192.0.2.2 from 192.0.2.1": {"sent": 3, "received": 3, "loss_pct": 0.0, "rtt_avg_ms": 0.11},
        "ping 192.0.2.3 from default": {"sent": 4, "received": 3, "loss_pct": 25.0, "rtt_avg_ms": 0.2},
        "traceroute 192.0.2.2 from 192.0.2.1": {"hops": ["10.0.0.2", "192.0.2.2"], "reached": True},
        "traceroute 192.0.2.9 from default": {"hops": [None, None], "reached": False},
    },
}


@pytest.mark.parametrize(("check", "passed"), [
    ({"type": "bgp_neighbor", "neighbor": "10.0.0.2"}, True),
    ({"type": "bgp_neighbor", "neighbor": "10.0.0.2", "min_prefixes": 4}, False),
    ({"type": "bgp_neighbor", "neighbor": "10.0.0.3"}, False),
    ({"type": "bgp_neighbor", "neighbor": "10.0.0.3", "state": "Active"}, True),
    ({"type": "bgp_neighbor", "neighbor": "10.0.0.9"}, False),
    ({"type": "bgp_neighbor", "neighbor": "r2"}, True),
    ({"type": "bgp_neighbor", "neighbor": "edge r3"}, False),
    ({"type": "bgp_neighbor", "neighbor": "*"}, False),
    ({"type": "bgp_neighbor", "neighbor": "*", "state": "Active"}, False),
    ({"type": "route", "prefix": "192.0.2.2/32"}, True),
    ({"type": "route", "prefix": "192.0.2.2/32", "protocol": "static"}, False),
    ({"type": "route", "prefix": "192.0.2.3/32"}, False),
    ({"type": "config_contains", "line": "neighbor 10.0.0.2 remote-as 65002"}, True),
    ({"type": "config_contains", "line": "neighbor 10.0.0.2 remote-as 6500"}, False),
    ({"type": "config_contains", "line": r"^ neighbor \S+ remote-as 650\d\d$", "regex": True}, True),
    ({"type": "config_lacks", "line": "hostname r1"}, False),
    ({"type": "config_lacks", "line": "ip route 0.0.0.0/0 blackhole"}, True),
    ({"type": "ospf_neighbor", "neighbor": "192.0.2.2"}, True),
    ({"type": "ospf_neighbor", "neighbor": "10.0.0.2"}, True),
    ({"type": "ospf_neighbor", "neighbor": "192.0.2.3"}, False),
    ({"type": "ospf_neighbor", "neighbor": "192.0.2.3", "state": "Init"}, True),
    ({"type": "ospf_neighbor", "neighbor": "*"}, False),
    ({"type": "ospf_neighbor", "neighbor": "192.0.2.9"}, False),
    ({"type": "route_count", "protocol": "bgp", "min_routes": 2}, True),
    ({"type": "route_count", "protocol": "bgp", "min_routes": 3}, False),
    ({"type": "route_count", "protocol": "total", "max_routes": 4}, False),
    ({"type": "route_count", "protocol": "ospf", "max_routes": 0}, True),
    ({"type": "ping", "destination": "192.0.2.2", "source": "192.0.2.1"}, True),
    ({"type": "ping", "destination": "192.0.2.3"}, False),
    ({"type": "ping", "destination": "192.0.2.3", "max_loss_pct": 25}, True),
    ({"type": "ping", "destination": "192.0.2.4"}, False),
    ({"type": "traceroute", "destination": "192.0.2.2", "source": "192.0.2.1", "via": ["10.0.0.2"]}, True),
    ({"type": "traceroute", "destination": "192.0.2.2", "source": "192.0.2.1", "via": ["10.0.0.3"]}, False),
    ({"type": "traceroute", "destination": "192.0.2.9"}, False),
])
def test_evaluate(check, passed):
    assert checks.option_errors([check]) == []
    result = checks.evaluate(check, FACTS)
    assert result["passed"] is passed, result
    assert result["message"]


def test_failed_neighbor_message_names_what_was_found_and_expected():
    result = checks.evaluate({"type": "bgp_neighbor", "neighbor": "10.0.0.3"}, FACTS)
    assert result["message"] == "neighbor 10.0.0.3 is Active (expected Established)"
    every = checks.evaluate({"type": "bgp_neighbor", "neighbor": "*"}, FACTS)
    assert every["message"] == "1 of 2 neighbors Established; not: 10.0.0.3 Active"
    assert checks.evaluate({"type": "bgp_neighbor", "neighbor": "*"}, {"neighbors": {}})["passed"] is False


@pytest.mark.parametrize(("given", "error"), [
    ([], "checks must be a non-empty list"),
    (["x"], "checks[0] is not a mapping"),
    ([{"type": "pingg"}], "checks[0]: type 'pingg' is not one of"),
    ([{"type": "ping"}], "checks[0] (ping): destination is required"),
    ([{"type": "ping", "destination": "192.0.2.1; reboot"}], "checks[0] (ping): destination must be an IPv4 address"),
    ([{"type": "ping", "destination": "192.0.2.1", "source": "-f"}], "source must be an IPv4 address"),
    ([{"type": "ping", "destination": "192.0.2.1", "count": 0}], "count must be an integer from 1 to 100"),
    ([{"type": "ping", "destination": "192.0.2.1", "count": True}], "count must be an integer from 1 to 100"),
    ([{"type": "ping", "destination": "192.0.2.1", "max_hops": 3}], "unknown option(s) max_hops"),
    ([{"type": "traceroute", "destination": "192.0.2.1", "via": "10.0.0.1"}], "via must be a list of IPv4"),
    ([{"type": "route_count", "protocol": "bgp", "min_routes": -1}], "min_routes must be an integer from 0"),
    ([{"type": "route"}], "checks[0] (route): prefix is required"),
    ([{"type": "route", "prefix": "1.0.0.0/8", "protocl": "bgp"}], "unknown option(s) protocl"),
    ([{"type": "config_lacks", "line": "(", "regex": True}], "line is not a regular expression"),
])
def test_option_errors_name_the_check(given, error):
    assert any(error in e for e in checks.option_errors(given)), checks.option_errors(given)


def test_needs_asks_only_for_what_the_checks_use():
    assert checks.needs([{"type": "route", "prefix": "x"}]) == {
        "neighbors": False, "ospf_neighbors": False, "routes": True, "route_counts": False, "config": False,
        "probes": False}
    wanted = checks.needs([{"type": "ping", "destination": "192.0.2.1"}, {"type": "route_count", "protocol": "bgp"}])
    assert [fact for fact, want in sorted(wanted.items()) if want] == ["probes", "route_counts"]


PING_OK = """PING 192.0.2.2 (192.0.2.2) from 192.0.2.1 : 56(84) bytes of data.
64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=0.129 ms
64 bytes from 192.0.2.2: icmp_seq=2 ttl=64 time=0.108 ms
64 bytes from 192.0.2.2: icmp_seq=3 ttl=64 time=0.107 ms

--- 192.0.2.2 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 406ms
rtt min/avg/max/mdev = 0.107/0.114/0.129/0.010 ms
"""
PING_LOST = """PING 192.0.2.99 (192.0.2.99) 56(84) bytes of data.

--- 192.0.2.99 ping statistics ---
2 packets transmitted, 0 received, 100% packet loss, time 202ms
"""
TRACE = """traceroute to 192.0.2.2 (192.0.2.2), 8 hops max, 60 byte packets
 1  10.89.0.5  0.159 ms
 2  *
 3  192.0.2.2  0.201 ms
"""


def test_probe_commands_and_parsers():
    """Captured from FRR routers of the test estate (iputils ping, traceroute 2.1)."""
    check = {"type": "ping", "destination": "192.0.2.2", "source": "192.0.2.1", "count": 3}
    assert frr.probe_argv(check) == ["ping", "-n", "-c", "3", "-W", "1", "-i", "0.2", "-I", "192.0.2.1", "192.0.2.2"]
    assert frr.probe(check, PING_OK, 0) == {"sent": 3, "received": 3, "loss_pct": 0.0, "rtt_avg_ms": 0.114}
    assert frr.probe(check, PING_LOST, 1) == {"sent": 2, "received": 0, "loss_pct": 100.0, "rtt_avg_ms": None}
    failed = frr.probe(check, "ping: bind: Cannot assign requested address", 2)
    assert failed["received"] == 0 and "ping exited 2: ping: bind" in failed["error"]
    result = checks.evaluate(check, {"probes": {checks.probe_key(check): failed}})
    assert result["passed"] is False and "Cannot assign requested address" in result["message"]
    trace = {"type": "traceroute", "destination": "192.0.2.2"}
    assert frr.probe_argv(trace) == ["traceroute", "-n", "-q", "1", "-w", "1", "-m", "8", "192.0.2.2"]
    assert frr.probe(trace, TRACE, 0) == {"hops": ["10.89.0.5", None, "192.0.2.2"], "reached": True}
    message = checks.evaluate(trace, {"probes": {checks.probe_key(trace): frr.probe(trace, TRACE, 0)}})["message"]
    assert message == "traceroute 192.0.2.2: reached in 3 hop(s) (10.89.0.5 * 192.0.2.2)"


def test_frr_parsers():
    summary = {"ipv4Unicast": {"peers": {"10.0.0.2": {"state": "Established", "pfxRcd": 2}}},
               "ipv6Unicast": {"peers": {"10.0.0.2": {"state": "Established", "pfxRcd": 1}}}}
    summary["ipv4Unicast"]["peers"]["10.0.0.2"]["hostname"] = "r2"
    assert frr.neighbors(json.dumps(summary)) == {
        "10.0.0.2": {"state": "Established", "prefixes_received": 3, "names": ["r2"]}}
    routes = {"192.0.2.2/32": [{"protocol": "bgp", "selected": True, "installed": True}],
              "192.0.2.3/32": [{"protocol": "bgp", "selected": False}]}
    assert frr.routes(json.dumps(routes)) == {"192.0.2.2/32": ["bgp"]}
    assert frr.neighbors("{}") == {}
    ospf = {"neighbors": {"192.0.2.10": [{"state": "Full/DR", "address": "10.89.0.5", "ifaceName": "eth0:10.89.0.6"}]}}
    assert frr.ospf_neighbors(json.dumps(ospf)) == {
        "192.0.2.10": {"state": "Full/DR", "address": "10.89.0.5", "interface": "eth0:10.89.0.6"}}
    summary = {"routes": [{"fib": 1, "rib": 1, "type": "kernel"}, {"fib": 2, "rib": 2, "type": "connected"},
                          {"fib": 2, "rib": 2, "type": "ebgp"}, {"fib": 1, "rib": 1, "type": "ibgp"}],
               "routesTotal": 6, "routesTotalFib": 6}
    assert frr.route_counts(json.dumps(summary)) == {
        "kernel": 1, "connected": 2, "ebgp": 2, "ibgp": 1, "bgp": 3, "total": 6}
    with pytest.raises(ValueError, match="show ip route json did not print JSON"):
        frr.routes("% Unknown command")


class FakeTime:
    """A clock that moves only when the watcher sleeps."""

    def __init__(self):
        self.now = 0.0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_watch_reports_a_flap_and_low_availability():
    from ansible_collections.itsop.change.plugins.module_utils._network import watch
    states = iter(["Established", "Established", "Idle", "Established"])
    fake = FakeTime()

    def read():
        return {"neighbors": {"10.0.0.2": {"state": next(states), "prefixes_received": 1, "names": []}}}

    result = watch.watch(read, [{"type": "bgp_neighbor", "neighbor": "10.0.0.2"}], duration=15, interval=5,
                         availability_pct=100, stop_on_breach=False, clock=fake.clock, sleep=fake.sleep)
    assert result["healthy"] is False
    assert [s["passed"] for s in result["samples"]] == [True, True, False, True]
    assert sorted(b["metric"] for b in result["breaches"]) == ["availability_pct", "neighbor_flaps"]
    assert result["summary"]["neighbor_flaps"] == {"10.0.0.2": 1}


def test_watch_counts_an_unreadable_device_as_a_failed_sample_and_stops_on_breach():
    from ansible_collections.itsop.change.plugins.module_utils._network import watch
    fake = FakeTime()

    def read():
        raise ValueError("timeout")

    result = watch.watch(read, [{"type": "route", "prefix": "1.0.0.0/8"}], duration=60, interval=5,
                         clock=fake.clock, sleep=fake.sleep)
    assert result["healthy"] is False and result["stopped_early"] is True
    assert result["samples"] == [{"at": "1970-01-01T00:00:00Z", "passed": False,
                                  "failed": ["device not readable: timeout"]}]


def test_watch_of_a_healthy_device_runs_the_whole_period():
    from ansible_collections.itsop.change.plugins.module_utils._network import watch
    fake = FakeTime()
    result = watch.watch(lambda: {"routes": {"1.0.0.0/8": ["bgp"]}}, [{"type": "route", "prefix": "1.0.0.0/8"}],
                         duration=20, interval=5, clock=fake.clock, sleep=fake.sleep)
    assert result["healthy"] is True and result["breaches"] == []
    assert result["summary"]["samples"] == 5  # at 0, 5, 10, 15 and 20 s


def test_intended_configuration_drops_negated_lines():
    running = "hostname r1\nline vty\n access-class MGMT\nexit\n"
    assert checks.intended(running, "line vty\n no access-class MGMT\n") == "hostname r1\nline vty\nexit\nline vty\n"
    assert checks.intended(running, "password zebra\n").endswith("exit\npassword zebra\n")


def test_configuration_diff_hides_every_secret_value():
    from ansible_collections.itsop.change.plugins.module_utils._network import configtext

    before = "hostname r1\n!\nrouter bgp 65001\n neighbor 10.0.0.2 password old-s3cret\nexit\n"
    after = ("hostname r1\n!\nrouter bgp 65001\n neighbor 10.0.0.2 password new-s3cret\nexit\n"
             "snmp-server community pub1ic RO\nenable secret 5 $1$abc\n"
             "interface eth0\n ip ospf message-digest-key 1 md5 k3y\n")
    diff = configtext.diff(before, after, "saved", "confirmed")
    for secret in ("old-s3cret", "new-s3cret", "pub1ic", "$1$abc", "k3y"):
        assert secret not in diff, secret
    assert "- neighbor 10.0.0.2 password <redacted>" in diff and "+snmp-server community <redacted> RO" in diff
    assert "+enable secret 5 <redacted>" in diff and "+ ip ospf message-digest-key 1 md5 <redacted>" in diff
    assert diff.startswith("--- saved\n+++ confirmed\n")
    assert configtext.diff(before, before) == ""
    long = configtext.diff("", "".join("line %d\n" % i for i in range(1000)))
    assert long.splitlines()[-1] == "... 603 more lines" and len(long.splitlines()) == 401
