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
    ([{"type": "ping"}], "checks[0]: type 'ping' is not one of"),
    ([{"type": "route"}], "checks[0] (route): prefix is required"),
    ([{"type": "route", "prefix": "1.0.0.0/8", "protocl": "bgp"}], "unknown option(s) protocl"),
    ([{"type": "config_lacks", "line": "(", "regex": True}], "line is not a regular expression"),
])
def test_option_errors_name_the_check(given, error):
    assert any(error in e for e in checks.option_errors(given)), checks.option_errors(given)


def test_needs_asks_only_for_what_the_checks_use():
    assert checks.needs([{"type": "route", "prefix": "x"}]) == {"neighbors": False, "routes": True, "config": False}


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
