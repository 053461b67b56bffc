"""Unit tests for the health-watch statistics and the incident notification payloads."""

from __future__ import annotations

import json

import pytest

from ansible_collections.itsop.change.plugins.module_utils.health import (
    availability_lost,
    evaluate,
    percentile,
    sample_events,
    summarize,
)
from ansible_collections.itsop.change.plugins.module_utils.notify import build_payload, encode, redact_url


def sample(t, ok=True, status=200, latency=10.0, active=True, restarts=0, journal=0, load=0.5, mem=80.0, disk=40.0):
    return {"t": t, "http_ok": ok, "http_status": status, "http_error": None, "latency_ms": latency,
            "service_active": active, "service_state": "active/running" if active else "failed/failed",
            "restarts": restarts, "journal_errors": journal, "load1": load, "mem_available_pct": mem,
            "disk_used_pct": {"/": disk}}


def test_percentile_nearest_rank():
    data = list(range(1, 101))
    assert percentile(data, 50) == 50 and percentile(data, 95) == 95 and percentile(data, 100) == 100
    assert percentile([], 95) is None and percentile([7], 95) == 7 and percentile([3, 1, 2], 0) == 1


def test_summary_of_healthy_watch():
    samples = [sample("t%d" % i, latency=float(i)) for i in range(1, 21)]
    s = summarize(samples)
    assert s["samples"] == 20 and s["availability_pct"] == 100.0
    assert s["latency_ms"] == {"min": 1.0, "p50": 10.0, "p95": 19.0, "max": 20.0}
    assert s["http_status_counts"] == {"200": 20} and s["restarts"] == 0
    assert evaluate(s, {"availability_pct": 99, "p95_latency_ms": 1000, "max_restarts": 0}) == []


def test_failures_restarts_and_resources_breach():
    samples = [sample("a"), sample("b", ok=False, status=500, latency=3.0), sample("c", active=False, ok=False,
                                                                                status=None, restarts=2),
               sample("d", restarts=2, journal=9, load=9.0, mem=3.0, disk=97.0)]
    s = summarize(samples, restarts_at_start=0)
    assert s["availability_pct"] == 50.0 and s["http_failures"] == 2 and s["service_down_samples"] == 1
    assert s["latency_ms"]["max"] == 10.0  # failed requests do not count in latency
    metrics = [b["metric"] for b in evaluate(s, {"availability_pct": 99, "max_restarts": 0, "max_journal_errors": 5,
                                                 "max_load1": 4, "min_mem_available_pct": 10,
                                                 "max_disk_used_pct": 90, "p95_latency_ms": None})]
    assert metrics == ["availability_pct", "max_restarts", "max_journal_errors", "max_load1",
                       "min_mem_available_pct", "max_disk_used_pct"]
    events = sample_events(samples)
    assert [(e["t"], e["what"]) for e in events] == [("b", "http"), ("c", "http"), ("c", "service"), ("c", "restart")]


def test_restarts_counted_from_start_value():
    s = summarize([sample("a", restarts=3), sample("b", restarts=3)], restarts_at_start=3)
    assert s["restarts"] == 0 and evaluate(s, {"max_restarts": 0}) == []


def test_availability_lost_early():
    assert not availability_lost([sample("a")], 10, 99)
    assert availability_lost([sample("a", ok=False)], 10, 95)   # best possible 90%
    assert not availability_lost([sample("a", ok=False)], 10, 90)
    assert not availability_lost([sample("a", ok=False)], 10, None)


def test_empty_watch():
    s = summarize([])
    assert s["availability_pct"] is None and evaluate(s, {"availability_pct": 99}) == []


INCIDENT = {"id": "INC-1", "change_id": "CHG-2026-0001", "host": "web1", "what": "health breach",
            "severity": "high", "detected_at": "2026-11-24T15:04:10Z", "action": "automatic rollback",
            "evidence": "stage5/monitoring.json#/hosts/web1",
            "breaches": [{"metric": "availability_pct", "message": "availability 50.00% below 99%",
                          "first_seen": "2026-11-24T15:04:10Z"}]}


def test_generic_payload_carries_the_incident():
    p = build_payload("generic", INCIDENT)
    assert p["type"] == "itsop.change/incident" and p["incident"] == INCIDENT
    assert "CHG-2026-0001" in p["text"] and "web1" in p["text"]


def test_slack_payload_shape():
    p = build_payload("slack", INCIDENT)
    assert p["text"].startswith("[HIGH]")
    assert [b["type"] for b in p["blocks"]] == ["header", "section", "section", "context"]
    assert "availability 50.00% below 99%" in p["blocks"][2]["text"]["text"]
    assert len(p["blocks"][0]["text"]["text"]) <= 150


def test_teams_payload_shape():
    p = build_payload("teams", INCIDENT)
    assert p["@type"] == "MessageCard" and p["@context"] == "https://schema.org/extensions"
    assert {"name": "Host", "value": "web1"} in p["sections"][0]["facts"]
    assert p["themeColor"] == "D9480F"


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown webhook format"):
        build_payload("discord", INCIDENT)


@pytest.mark.parametrize("url, expected", [
    ("https://hooks.slack.com/services/T0/B0/secret", "https://hooks.slack.com/<redacted>"),
    ("http://127.0.0.1:8765/x?token=abc", "http://127.0.0.1:8765/<redacted>"),
    ("https://user:pw@example.com/h", "https://example.com/<redacted>"),
])
def test_redact_url_keeps_only_scheme_host_port(url, expected):
    assert redact_url(url) == expected


def test_encode_is_json_bytes():
    assert json.loads(encode(build_payload("generic", INCIDENT)).decode())["incident"]["id"] == "INC-1"
