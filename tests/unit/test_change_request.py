"""Change request format v1: schema, semantic rules, messages, normalisation, module."""

from __future__ import annotations

import copy
import hashlib
import datetime
import json
import re
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.itsop.change.plugins.module_utils import change_request as cr
from ansible_collections.itsop.change.plugins.module_utils._change_request import schema
from ansible_collections.itsop.change.plugins.module_utils._change_request import timestamps
from tests.helpers import REPO, VENV_BIN, base_env

EXAMPLES = REPO / "docs" / "examples" / "change-requests"
SCHEMA_FILE = REPO / "schemas" / "change_request.v1.json"
BOTH = pytest.mark.parametrize("use_jsonschema", [True, False], ids=["jsonschema", "builtin"])


@pytest.fixture
def valid() -> dict:
    return cr.load_change_request(EXAMPLES / "security-patch-1.1.0.yml")


def test_embedded_schema_is_the_schema_file():
    assert json.loads(SCHEMA_FILE.read_text()) == schema.SCHEMA
    assert schema.SCHEMA["$schema"].endswith("2020-12/schema")


def test_schema_is_a_valid_draft_2020_12_schema():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema.SCHEMA)


def test_architecture_example_is_valid():
    text = (REPO / "docs" / "architecture.md").read_text()
    block = re.search(r"```yaml\n(api_version: itsop.change/v1.*?)```", text, re.S).group(1)
    data = yaml.safe_load(block)
    data["description"] = "x"  # the doc elides it with "..."
    data["items"]["artifacts"][0]["sha256"] = "a" * 64
    data["items"]["config_files"][0]["template"] = "templates/config.ini.j2"
    assert cr.validate_change_request(data) == []


@BOTH
@pytest.mark.parametrize("name", ["security-patch-1.1.0.yml", "broken-update-1.2.0.yml",
                                  "network-announce-198.51.100.0.yml"])
def test_valid_examples(name, use_jsonschema):
    data = cr.load_change_request(EXAMPLES / name)
    assert cr.validate_change_request(data, use_jsonschema=use_jsonschema) == []


@BOTH
def test_invalid_example_names_every_field(use_jsonschema):
    data = cr.load_change_request(EXAMPLES / "invalid.yml")
    errors = cr.validate_change_request(data, use_jsonschema=use_jsonschema)
    assert errors == [
        'id: "CHG-42" does not match ^CHG-[0-9]{4}-[0-9]{4,}$',
        "items.packages[0].version: is required",
        'risk: "severe" is not one of "low", "medium", "high", "critical"',
        "window.timezone: unknown time zone Asia/Jakrta",
        "reason.references: a security_recommendation needs advisory or CVE references",
        "targets.staging: must not share targets with targets.production (web-1)",
        "approvers.qa: needs at least one approver",
    ]
    # the comment at the top of the example documents exactly these messages
    head = (EXAMPLES / "invalid.yml").read_text()
    for err in errors:
        assert err in head


@BOTH
@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["window"].update(end="2026-11-24T21:00:00+07:00"), "window.end: must be after window.start"),
    (lambda d: d["window"].update(end=d["window"]["start"]), "window.end: must be after window.start"),
    (lambda d: d["window"].update(timezone="Mars/Olympus"), "window.timezone: unknown time zone Mars/Olympus"),
    (lambda d: d["window"].update(start="tomorrow"), "window.start: not a valid timestamp"),
    (lambda d: d["window"].pop("start"), "window.start: is required"),
    (lambda d: d.update(expected_downtime_minutes=600),
     "expected_downtime_minutes: 600 exceeds the window length (240 minutes)"),
    (lambda d: d["reason"].update(references=[]),
     "reason.references: a security_recommendation needs advisory or CVE references"),
    (lambda d: d["reason"].pop("references"),
     "reason.references: a security_recommendation needs advisory or CVE references"),
    (lambda d: d["approvers"].update(it_manager=[]), "approvers.it_manager: needs at least one approver"),
    (lambda d: d["approvers"].pop("security"), "approvers.security: is required"),
    (lambda d: d.update(type="hotfix"), 'type: "hotfix" is not one of "install", "update", "patch", "security_patch"'),
    (lambda d: d.update(colour="blue"), "colour: unknown field"),
    (lambda d: d["items"]["packages"][0].update(version=110), "items.packages[0].version: must be of type string"),
    (lambda d: d["items"]["packages"].append({"name": "itsop-demo-web", "version": "1.0.0"}),
     "items.packages[1].name: itsop-demo-web is already listed at items.packages[0]"),
    (lambda d: d["items"].update(config_files=[{"dest": "/etc/x"}]),
     "items.config_files[0]: needs exactly one of template, content"),
    (lambda d: d["items"].update(config_files=[{"dest": "etc/x", "content": "a"}]),
     'items.config_files[0].dest: "etc/x" does not match ^/'),
    (lambda d: d["items"].update(artifacts=[{"name": "x.tar", "source": "/tmp/x.tar", "sha256": "a" * 64,
                                             "install": True}]),
     "items.artifacts[0].name: install: true needs a .deb or .rpm file, found x.tar"),
    (lambda d: d["items"].update(artifacts=[{"name": "x.deb", "source": "/tmp/x.deb", "sha256": "abc"}]),
     'items.artifacts[0].sha256: "abc" does not match'),
    (lambda d: d["targets"].update(staging=["production"]),
     "targets.staging: must not share targets with targets.production (production)"),
    (lambda d: d["execution"].update(serial="150%"), "execution.serial: matches none of the allowed forms"),
    (lambda d: d["execution"].update(max_fail_percentage=101), "execution.max_fail_percentage: must be at most 100"),
    (lambda d: d["test_plan"]["functional"].append({"type": "http"}), "test_plan.functional[6].url: is required"),
    (lambda d: d["test_plan"].update(functional=[]), "test_plan.functional: must have at least 1 item(s)"),
    (lambda d: d.update(api_version="v2"), 'api_version: must be "itsop.change/v1"'),
    (lambda d: d.update(requester="Budi Santoso"), 'requester: "Budi Santoso" does not match'),
])
def test_each_rule_names_field_and_reason(valid, mutate, expected, use_jsonschema):
    data = copy.deepcopy(valid)
    mutate(data)
    errors = cr.validate_change_request(data, use_jsonschema=use_jsonschema)
    assert any(e.startswith(expected) for e in errors), errors


def test_both_validators_agree_on_many_broken_documents(valid):
    pytest.importorskip("jsonschema")
    broken = []
    for key in list(valid):
        d = copy.deepcopy(valid)
        d.pop(key)
        broken.append(d)
        d = copy.deepcopy(valid)
        d[key] = 7
        broken.append(d)
    for d in broken:
        assert cr.validate_change_request(d, use_jsonschema=True) == \
            cr.validate_change_request(d, use_jsonschema=False), d


def test_not_a_mapping():
    assert cr.validate_change_request(["a"]) == ["(root): the change request must be a mapping, found array"]


def test_normalise_applies_defaults_and_utc(valid):
    for key in ("execution", "monitoring", "dpia_required"):
        valid.pop(key)
    valid["window"] = {"start": "2026-11-24 22:00", "end": "2026-11-25T01:30:00"}  # naive -> Asia/Jakarta
    out = cr.normalise_change_request(valid)
    assert out["window"]["timezone"] == "Asia/Jakarta"
    assert out["window"]["start_utc"] == "2026-11-24T15:00:00Z"
    assert out["window"]["end_utc"] == "2026-11-24T18:30:00Z"
    assert out["window"]["end_epoch"] - out["window"]["start_epoch"] == 210 * 60
    assert out["window"]["duration_minutes"] == 210
    assert out["window"]["grace_minutes"] == 0
    assert out["execution"] == {"serial": 1, "max_fail_percentage": 0, "reboot_allowed": False}
    assert out["dpia_required"] is False
    assert out["monitoring"]["thresholds"]["max_restarts"] == 0
    assert out["items"]["packages"][0]["services"] == ["itsop-demo-web"]
    assert out["items"]["artifacts"] == [] and out["items"]["config_files"] == []
    assert "start_utc" not in valid["window"], "input must not be mutated"


def test_normalise_offsets_and_z():
    assert timestamps.parse_timestamp("2026-11-24T15:00:00Z").isoformat() == "2026-11-24T15:00:00+00:00"
    assert timestamps.parse_timestamp("2026-11-24T22:00:00+0700").isoformat() == "2026-11-24T15:00:00+00:00"
    assert timestamps.parse_timestamp("2026-11-24T22:00:00.5+07:00").isoformat() == "2026-11-24T15:00:00.500000+00:00"
    # an explicit offset wins over the window time zone
    assert timestamps.parse_timestamp("2026-11-24T22:00:00+07:00", "Europe/Berlin").hour == 15


def test_normalise_raises_with_every_error(valid):
    valid["window"]["end"] = valid["window"]["start"]
    valid["risk"] = "extreme"
    with pytest.raises(cr.ChangeRequestError) as info:
        cr.normalise_change_request(valid)
    assert "window.end: must be after window.start" in info.value.errors
    assert any(e.startswith("risk:") for e in info.value.errors)


def test_unquoted_yaml_timestamps_are_accepted(tmp_path):
    text = (EXAMPLES / "security-patch-1.1.0.yml").read_text().replace('"2026-11-24T22:00:00+07:00"',
                                                                       "2026-11-24T22:00:00+07:00")
    path = tmp_path / "cr.yml"
    path.write_text(text)
    out = cr.load_and_normalise(path)
    assert out["window"]["start_utc"] == "2026-11-24T15:00:00Z"


@pytest.mark.parametrize(("content", "needle"), [
    (b"- a\n- b\n", "must be a mapping, found list"),
    (b"id: [unclosed\n", "not valid YAML"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_load_errors(tmp_path, content, needle):
    path = tmp_path / "cr.yml"
    path.write_bytes(content)
    with pytest.raises(cr.ChangeRequestError, match=needle):
        cr.load_change_request(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(cr.ChangeRequestError, match=r"nope.yml: cannot open \(No such file"):
        cr.load_change_request(tmp_path / "nope.yml")


def _module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "ansible"), "localhost", "-m", "itsop.change.change_request_info",
                           "-a", *args], capture_output=True, text=True, env=base_env(), cwd=REPO,
                          check=False, timeout=120)


def test_module_valid_and_invalid(tmp_path):
    ok = _module(f"path={EXAMPLES / 'security-patch-1.1.0.yml'}")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "start_utc: '2026-11-24T15:00:00Z'" in ok.stdout
    assert "changed: false" in ok.stdout
    bad = _module(f"path={EXAMPLES / 'invalid.yml'}")
    assert bad.returncode != 0
    assert "approvers.qa: needs at least one approver" in bad.stdout
    assert "window.timezone: unknown time zone Asia/Jakrta" in bad.stdout


def test_module_data_option():
    data = yaml.safe_load((EXAMPLES / "broken-update-1.2.0.yml").read_text())
    proc = _module(json.dumps({"data": data}))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "end_utc: '2026-12-01T16:00:00Z'" in proc.stdout


def test_module_requires_one_source():
    proc = _module("")
    assert proc.returncode != 0
    assert "one of the following is required: path, data" in proc.stdout


def test_schema_file_is_json_and_examples_dir_has_four():
    assert sorted(p.name for p in Path(EXAMPLES).glob("*.yml")) == [
        "broken-update-1.2.0.yml", "invalid.yml", "network-announce-198.51.100.0.yml", "security-patch-1.1.0.yml"]


def test_normalising_a_normalised_change_request_is_idempotent_and_checks_derived_fields(valid):
    """sopctl passes the normalised change to the stage playbooks, which normalise it again."""
    once = cr.normalise_change_request(valid)
    assert cr.normalise_change_request(once) == once
    tampered = copy.deepcopy(once)
    tampered["window"]["end_epoch"] += 3600
    with pytest.raises(cr.ChangeRequestError) as err:
        cr.normalise_change_request(tampered)
    assert any(e.startswith("window.end_epoch:") and "does not match" in e for e in err.value.errors)


# --- window offsets must agree with window.timezone (issue 15, class 13) --------------------------

@BOTH
def test_window_end_with_another_zones_offset_is_refused_naming_both(valid, use_jsonschema):
    """A 2-hour window (22:00-24:00 Jakarta) whose end was written with New York's offset lasts 14 hours."""
    valid["window"].update(start="2026-11-24T22:00", end="2026-11-25T00:00:00-05:00")
    valid["expected_downtime_minutes"] = 5
    errors = cr.validate_change_request(valid, use_jsonschema=use_jsonschema)
    assert errors == [
        "window.end: offset -05:00 given in 2026-11-25T00:00:00-05:00 disagrees with window.timezone Asia/Jakarta "
        "(+07:00 at that instant, where this time is 2026-11-25T12:00:00+07:00); write the time in "
        "window.timezone or without an offset"]
    with pytest.raises(cr.ChangeRequestError):
        cr.normalise_change_request(valid)


@pytest.mark.parametrize(("window", "field", "given", "expected"), [
    ({"start": "2026-11-24T22:00:00Z", "end": "2026-11-25T02:00:00+07:00"}, "start", "+00:00", "+07:00"),
    ({"start": "2026-11-24T15:00:00+00:00", "end": "2026-11-24T19:00:00+00:00"}, "start", "+00:00", "+07:00"),
    ({"start": "2026-11-24T22:00:00+0800", "end": "2026-11-25T02:00:00+07:00"}, "start", "+08:00", "+07:00"),
    ({"start": "2026-07-15T22:00:00+01:00", "end": "2026-07-15T23:00:00+02:00", "timezone": "Europe/Berlin"},
     "start", "+01:00", "+02:00"),
    ({"start": "2026-11-24T22:00:00+07:00", "end": "2026-11-25T02:00:00+07:00", "timezone": "UTC"},
     "start", "+07:00", "+00:00"),
])
def test_disagreeing_offsets_are_refused(valid, window, field, given, expected):
    valid["window"] = window  # no timezone: the default Asia/Jakarta applies, as normalisation writes it
    errors = cr.validate_change_request(valid)
    zone = window.get("timezone", "Asia/Jakarta")
    assert any(e.startswith(f"window.{field}: offset {given} given in {window[field]} disagrees with "
                            f"window.timezone {zone} ({expected} at that instant") for e in errors), errors


@pytest.mark.parametrize("window", [
    {"start": "2026-11-24T22:00:00+07:00", "end": "2026-11-25T02:00:00+07:00"},
    {"start": "2026-11-24T22:00", "end": "2026-11-25T02:00"},
    {"start": "2026-11-24T15:00:00Z", "end": "2026-11-24T19:00:00Z", "timezone": "UTC"},
    {"start": "2026-11-24T15:00:00Z", "end": "2026-11-24T19:00:00+00:00", "timezone": "Etc/UTC"},
    {"start": "2026-10-25T02:30:00+02:00", "end": "2026-10-25T02:45:00+01:00", "timezone": "Europe/Berlin"},
])
def test_agreeing_offsets_are_accepted(valid, window):
    valid["window"] = window
    valid["expected_downtime_minutes"] = 5
    assert cr.validate_change_request(valid) == []
    once = cr.normalise_change_request(valid)
    assert cr.normalise_change_request(once) == once


def test_unquoted_yaml_timestamp_with_a_wrong_offset_is_refused(tmp_path):
    text = (EXAMPLES / "security-patch-1.1.0.yml").read_text().replace('"2026-11-24T22:00:00+07:00"',
                                                                       "2026-11-24T22:00:00+01:00")
    path = tmp_path / "cr.yml"
    path.write_text(text)
    with pytest.raises(cr.ChangeRequestError) as info:
        cr.load_and_normalise(path)
    assert info.value.errors[0].startswith("window.start: offset +01:00 given in 2026-11-24T22:00:00+01:00 disagrees")


@settings(max_examples=30, deadline=None)
@given(minutes=st.integers(0, 366 * 24 * 60), offset=st.integers(-14 * 4, 14 * 4).map(lambda q: q * 15),
       zone=st.sampled_from(["Asia/Jakarta", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC"]))
def test_property_an_offset_is_accepted_iff_it_is_the_zones_offset_at_that_instant(minutes, offset, zone):
    instant = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
    written = instant.astimezone(datetime.timezone(datetime.timedelta(minutes=offset))).isoformat()
    zone_offset = instant.astimezone(ZoneInfo(zone)).utcoffset()
    problem = timestamps.offset_disagreement(written, zone)
    assert (problem is None) == (zone_offset == datetime.timedelta(minutes=offset))
    if problem:
        assert timestamps.format_offset(zone_offset) in problem and zone in problem
    assert timestamps.parse_timestamp(written, zone) == instant  # the instant itself is never changed


# ---- names and paths: what the approvers read is where the file is (issue 15, checked name = written name)
@pytest.mark.parametrize(("field", "value", "message"), [
    ("artifact", "..", 'items.artifacts[0].name: ".." does not match'),
    ("artifact", ".", 'items.artifacts[0].name: "." does not match'),
    ("artifact", "-rf", 'items.artifacts[0].name: "-rf" does not match'),
    ("artifact", "a\\b.deb", "items.artifacts[0].name:"),
    ("dest", "/etc/itsop-demo-web/../../etc/sudoers", "items.config_files[0].dest: "),
    ("dest", "/etc/itsop-demo-web//config.ini", "items.config_files[0].dest: "),
    ("template", "/root/.local/state/sopctl/keys/controller.key",
     "items.config_files[0].template: must be a path relative"),
    ("template", "../../../etc/shadow", "items.config_files[0].template: "),
    ("template", "./config.ini.j2", "items.config_files[0].template: "),
    ("backup", "/etc/itsop-demo-web/", "backup.paths[0]: "),
    ("backup", "/var/lib/../../etc", "backup.paths[0]: "),
])
@BOTH
def test_names_and_paths_that_read_as_something_else_are_refused(valid, field, value, message, use_jsonschema):
    data = copy.deepcopy(valid)
    if field == "artifact":
        data["items"]["artifacts"] = [{"name": value, "source": "/srv/a.deb", "sha256": "a" * 64}]
    elif field in ("dest", "template"):
        entry = {"dest": "/etc/itsop-demo-web/config.ini", "template": "config.ini.j2"}
        entry[field] = value
        data["items"]["config_files"] = [entry]
    else:
        data["backup"]["paths"] = [value]
    errors = cr.validate_change_request(data, use_jsonschema=use_jsonschema)
    assert any(e.startswith(message) for e in errors), errors


@BOTH
def test_canonical_names_and_paths_are_accepted(valid, use_jsonschema):
    data = copy.deepcopy(valid)
    data["items"]["artifacts"] = [{"name": "itsop-demo-web_1.1.0+deb12u1~rc1_all.deb", "source": "/srv/a.deb",
                                   "sha256": "a" * 64}]
    data["items"]["config_files"] = [{"dest": "/etc/itsop-demo-web/config.ini", "template": "templates/config.ini.j2"}]
    data["backup"]["paths"] = ["/etc/itsop-demo-web", "/"]
    assert cr.validate_change_request(data, use_jsonschema=use_jsonschema) == []


# --- network changes ------------------------------------------------------------------------------

NETWORK_EXAMPLE = EXAMPLES / "network-announce-198.51.100.0.yml"


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["items"].update(packages=[{"name": "frr", "version": "8.4.4"}]),
     "items.network_config: a network change changes network devices only; move items.packages"),
    (lambda d: d["test_plan"].pop("network"), "test_plan.network: a network change needs state checks"),
    (lambda d: d["test_plan"]["network"].append({"type": "route"}), "test_plan.network[5]"),
    (lambda d: d["test_plan"]["network"].append({"type": "ping", "host": "x"}), "test_plan.network[5]"),
    (lambda d: d["test_plan"]["network"].append({"type": "ping", "destination": "192.0.2.1", "source": "-f"}),
     "test_plan.network[5]"),
    (lambda d: d["test_plan"]["network"].append({"type": "ping", "destination": "999.0.2.1"}),
     "test_plan.network[5] (ping): destination must be an IPv4 address"),
    (lambda d: d["test_plan"]["network"].append({"type": "route_count", "protocol": "bgp", "count": 3}),
     "test_plan.network[5]"),
    (lambda d: d["items"]["network_config"].update(confirm_timeout=5), "items.network_config.confirm_timeout"),
    (lambda d: d["items"]["network_config"].update(lines=""), "items.network_config.lines"),
    (lambda d: d["items"]["network_config"].update(lines="hostname a\rwrite erase\n"),
     "items.network_config.lines: line 1 holds a carriage return"),
    (lambda d: d["items"]["network_config"].update(lines="hostname a\u202e\n"), "items.network_config.lines"),
    (lambda d: d["items"]["network_config"].update(lines="router bgp\n neighbor 10.0.0.2 password s3cr3t\n"),
     "items.network_config.lines: 'neighbor ...' sets a password; a change request is archived"),
    (lambda d: d["items"]["network_config"].update(lines="snmp-server community public RO\n"),
     "sets a community"),
    (lambda d: d["items"]["network_config"].update(template="router bgp\n"), "items.network_config"),
    (lambda d: d["items"]["network_config"].pop("lines"), "items.network_config"),
    (lambda d: d["items"]["network_config"].update(lines=None, template="router bgp\n{% for p in peers %}\n"),
     "items.network_config.template: line 2: Unexpected end of template"),
    (lambda d: d["items"]["network_config"].update(lines=None, template=" neighbor {{ p }} password {{ pw }}\n"),
     "items.network_config.template: 'neighbor ...' sets a password"),
    (lambda d: d["items"]["network_config"].update(lines=None, template="hostname {{ n }}\n", vars={"1n": "a"}),
     "items.network_config.vars: '1n' is not a template variable name"),
])
@pytest.mark.parametrize("use_jsonschema", [True, False])
def test_network_change_request_errors(mutate, message, use_jsonschema):
    data = yaml.safe_load(NETWORK_EXAMPLE.read_text())
    mutate(data)
    data["items"]["network_config"] = {k: v for k, v in data["items"]["network_config"].items() if v is not None}
    errors = cr.validate_change_request(data, use_jsonschema=use_jsonschema)
    assert any(message in e for e in errors), errors


def test_config_templates_are_bound_by_their_digest(valid, tmp_path):
    """The loader gives every template its template_sha256, so the approvals (which bind the request's
    digest) bind the template's content; a named digest must match, a missing template is named."""
    template = tmp_path / "templates" / "config.ini.j2"
    template.parent.mkdir()
    template.write_bytes(b"[app]\nport = {{ port }}\n")
    data = copy.deepcopy(valid)
    data["items"]["config_files"] = [{"dest": "/etc/app/config.ini", "template": "templates/config.ini.j2"}]
    change = cr.bind_templates(cr.normalise_change_request(data), str(tmp_path))
    digest = change["items"]["config_files"][0]["template_sha256"]
    assert digest == hashlib.sha256(template.read_bytes()).hexdigest()
    # a bound request is still a valid request (the stage playbooks load it again)
    assert cr.normalise_change_request(change)["items"]["config_files"][0]["template_sha256"] == digest
    template.write_bytes(b"[app]\nport = {{ lookup('pipe', 'id') }}\n")
    with pytest.raises(cr.ChangeRequestError) as caught:
        cr.bind_templates(change, str(tmp_path))
    assert caught.value.errors[0].startswith("items.config_files[0].template: templates/config.ini.j2 has sha256 ")
    assert caught.value.errors[0].endswith("the request names %s (the template changed)" % digest)
    template.unlink()
    with pytest.raises(cr.ChangeRequestError, match=r"items.config_files\[0\].template: .*config.ini.j2"):
        cr.bind_templates(cr.normalise_change_request(data), str(tmp_path))
