"""Look-alike and trailing-newline identities (issue 15, class 12).

``agus`` and ``\u0430gus`` (Cyrillic a) must not be two people; ``budi\\n`` must not pass as a person
id (Python's ``$`` matches before a final newline, and jsonschema applies ``pattern`` with
``re.search``); ``CHG-2026-0042\\n`` must not register beside ``CHG-2026-0042``. Every place an id
enters is checked: the change request (both validators), the roster, the identity file,
``identity keygen --id``, change ids on the command line and the store.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sopctl import approvals as ap
from sopctl import policy
from sopctl.errors import EXIT_USAGE, Refusal
from sopctl.policy import PolicyError
from sopctl.stages import Engine
from sopctl.store import Store

from ansible_collections.itsop.change.plugins.module_utils import change_request as cr
from ansible_collections.itsop.change.plugins.module_utils._change_request import characters
from ansible_collections.itsop.change.plugins.module_utils._change_request import schema
from ansible_collections.itsop.change.plugins.module_utils._change_request import validator
from tests.fixtures.sopctl.world import World
from tests.helpers import REPO

EXAMPLE = REPO / "docs" / "examples" / "change-requests" / "security-patch-1.1.0.yml"
BOTH = pytest.mark.parametrize("use_jsonschema", [True, False], ids=["jsonschema", "builtin"])
BOUNDED = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CYRILLIC_A = "\u0430"
ASCII_ID = re.compile(r"[a-z][a-z0-9._-]{0,63}")


@pytest.fixture
def valid() -> dict:
    return cr.load_change_request(EXAMPLE)


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = World(tmp_path)
    monkeypatch.setenv("SOPCTL_HOME", str(w.home))
    monkeypatch.setenv("SOPCTL_PLAYBOOK_DIR", str(tmp_path / "no-playbooks"))
    return w


def write_roster(world: World, mutate) -> None:
    roster = yaml.safe_load((world.tmp / "roster.yml").read_text())
    mutate(roster["people"])
    (world.tmp / "roster.yml").write_text(yaml.safe_dump(roster, sort_keys=False, allow_unicode=True))


# --------------------------------------------------------------------------------------------
# the change request: both validators, every id field

@BOTH
@pytest.mark.parametrize(("field", "value", "expected"), [
    ("requester", "budi\n", "requester: contains U+000A at position 4"),
    ("requester", f"{CYRILLIC_A}gus", r'requester: "\u0430gus" does not match ^[a-z][a-z0-9._-]{0,63}$'),
    ("id", "CHG-2026-0042\n", "id: contains U+000A at position 13"),
    ("id", "CHG-2026-0042\u200b", "id: contains U+200B ZERO WIDTH SPACE at position 13"),
    ("id", "CHG-2026-\u0660\u0660\u0664\u0662", r'id: "CHG-2026-\u0660\u0660\u0664\u0662" does not match'),
])
def test_change_request_ids_are_matched_in_full(valid, use_jsonschema, field, value, expected):
    data = copy.deepcopy(valid)
    data[field] = value
    errors = cr.validate_change_request(data, use_jsonschema=use_jsonschema)
    assert any(e.startswith(expected) for e in errors), errors


@BOTH
def test_approver_with_a_trailing_newline_or_cyrillic_letter_is_refused(valid, use_jsonschema):
    data = copy.deepcopy(valid)
    data["approvers"]["security"] = ["agus\n"]
    data["approvers"]["qa"] = [f"rin{CYRILLIC_A}"]
    errors = cr.validate_change_request(data, use_jsonschema=use_jsonschema)
    assert "approvers.security[0]: contains U+000A at position 4 (one line of text without control or format " \
           "characters)" in errors
    assert r'approvers.qa[0]: "rin\u0430" does not match ^[a-z][a-z0-9._-]{0,63}$' in errors


@BOTH
def test_schema_patterns_alone_refuse_a_trailing_newline(valid, use_jsonschema):
    """The schema layer itself (not only the semantic check) gives ``$`` its JSON Schema meaning."""
    data = copy.deepcopy(valid)
    data["id"] = "CHG-2026-0042\n"
    data["requester"] = "budi\n"
    data["items"]["packages"][0]["version"] = "1.1.0\n"
    errors = validator.schema_errors(data, use_jsonschema=use_jsonschema)
    assert errors == [
        'id: "CHG-2026-0042\\n" does not match ^CHG-[0-9]{4}-[0-9]{4,}$',
        'items.packages[0].version: "1.1.0\\n" does not match ^[A-Za-z0-9][A-Za-z0-9.+~:_-]*$',
        'requester: "budi\\n" does not match ^[a-z][a-z0-9._-]{0,63}$',
    ]


def test_control_and_bidi_characters_are_refused_in_every_string_field(valid):
    data = copy.deepcopy(valid)
    data["title"] = "Patch \x1b[2J"
    data["description"] = "line one\nline two \u202eevil"
    data["rollback"]["plan"] = "restore\n\tthen reinstall"  # multi-line free text is fine
    data["items"]["packages"][0]["service"] = "itsop-demo-web\r"
    data["targets"]["production"] = ["production\x00"]
    errors = cr.validate_change_request(data)
    assert "title: contains U+001B at position 6 (one line of text without control or format characters)" in errors
    assert ("description: contains U+202E RIGHT-TO-LEFT OVERRIDE at position 18 (control and bidirectional "
            "override characters are not accepted)") in errors
    assert any(e.startswith("items.packages[0].service: contains U+000D at position 14") for e in errors)
    assert any(e.startswith("targets.production[0]: contains U+0000 at position 10") for e in errors)
    assert not any(e.startswith("rollback.plan") for e in errors)


def test_unknown_field_names_are_printed_escaped(valid):
    data = copy.deepcopy(valid)
    data["colour\x1b[31m"] = "red"
    errors = cr.validate_change_request(data)
    assert '"colour\\u001b[31m": field name contains U+001B at position 6' in errors
    assert all("\x1b" not in e for e in errors)


def test_id_problem_names_the_lookalike_character():
    assert characters.id_problem(f"{CYRILLIC_A}gus", schema.PERSON_ID_PATTERN) == (
        r'"\u0430gus" contains U+0430 CYRILLIC SMALL LETTER A at position 0; ids are plain ASCII matching '
        r"^[a-z][a-z0-9._-]{0,63}$")
    assert characters.id_problem("budi", schema.PERSON_ID_PATTERN) is None
    assert characters.id_problem("budi\n", schema.PERSON_ID_PATTERN).startswith(r'"budi\n" contains U+000A')


@BOUNDED
@given(value=st.text(max_size=70))
def test_property_person_id_accepted_iff_plain_ascii_full_match(value):
    accepted = policy.id_problem(value, "person") is None
    assert accepted == bool(ASCII_ID.fullmatch(value))
    assert validator.pattern_matches(schema.PERSON_ID_PATTERN, value) == bool(ASCII_ID.fullmatch(value))


@BOUNDED
@given(base=st.from_regex(ASCII_ID, fullmatch=True),
       suffix=st.sampled_from(["\n", "\r", "\x00", "\u200b", "\u202e", "\u2028", "\x85", "\t", " "]))
def test_property_valid_id_plus_control_or_format_character_is_refused_by_both_validators(valid, base, suffix):
    data = copy.deepcopy(valid)
    data["requester"] = base + suffix
    with_js = cr.validate_change_request(data, use_jsonschema=True)
    builtin = cr.validate_change_request(data, use_jsonschema=False)
    assert with_js == builtin
    assert any(e.startswith("requester: ") for e in with_js), with_js


@BOUNDED
@given(base=st.from_regex(r"[a-z]{3,10}", fullmatch=True), data=st.data())
def test_property_cyrillic_or_greek_lookalike_is_refused_and_reads_as_the_latin_id(base, data):
    lookalikes = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "x": "\u0445",
                  "y": "\u0443", "i": "\u0456"}
    positions = [i for i, ch in enumerate(base) if ch in lookalikes]
    if not positions:
        base, positions = "a" + base, [0]
    at = data.draw(st.sampled_from(positions))
    fake = base[:at] + lookalikes[base[at]] + base[at + 1:]
    assert policy.skeleton(fake) == policy.skeleton(base)
    problem = policy.id_problem(fake, "person")
    assert problem is not None and f"at position {at}" in problem and f"(it reads as {base})" in problem


# --------------------------------------------------------------------------------------------
# the roster

def test_roster_with_latin_and_cyrillic_agus_is_refused_naming_the_entry(world):
    write_roster(world, lambda people: people.update({f"{CYRILLIC_A}gus": dict(people["agus"], roles=["qa"])}))
    with pytest.raises(PolicyError) as info:
        policy.load_roster(world.tmp / "roster.yml")
    assert str(info.value) == (
        f'roster {world.tmp / "roster.yml"}: people."\\u0430gus": person id "\\u0430gus" contains U+0430 CYRILLIC '
        "SMALL LETTER A at position 0; ids are plain ASCII matching ^[a-z][a-z0-9._-]{0,63}$ (it reads as agus)")
    assert info.value.code == EXIT_USAGE


@pytest.mark.parametrize(("pid", "message"), [
    ("budi\n", r'people\."budi\\n": person id "budi\\n" contains U\+000A at position 4'),
    ("Agus", r'people\."Agus": person id "Agus" does not match'),
    ("\uff41\uff47\uff55\uff53", r"U\+FF41 FULLWIDTH LATIN SMALL LETTER A at position 0.*\(it reads as agus\)"),
    ("../x", r'people\."../x": person id "../x" does not match'),
    ("", r'people\."": person id "" does not match'),
])
def test_roster_ids_must_be_plain_ascii(world, pid, message):
    write_roster(world, lambda people: people.update({pid: {"roles": ["qa"]}}))
    with pytest.raises(PolicyError, match=message):
        policy.load_roster(world.tmp / "roster.yml")


@pytest.mark.parametrize(("first", "second"), [("marta", "rnarta"), ("budi.s", "budi_s"), ("ell0", "ello"),
                                               ("eko1", "ekol")])
def test_roster_ids_that_read_alike_are_refused(world, first, second):
    write_roster(world, lambda people: people.update({first: {"roles": ["qa"]}, second: {"roles": ["users"]}}))
    with pytest.raises(PolicyError, match=rf"people\.\"{re.escape(second)}\": looks like people\.{re.escape(first)}"):
        policy.load_roster(world.tmp / "roster.yml")


def test_roster_name_with_a_terminal_escape_is_refused(world):
    write_roster(world, lambda people: people["sari"].update(name="Sari \x1b]0;owned\x07"))
    with pytest.raises(PolicyError, match=r'people\."sari"\.name: contains U\+001B at position 5'):
        policy.load_roster(world.tmp / "roster.yml")


def test_two_identities_for_one_person_cannot_split_stage3_and_signoff(world, monkeypatch):
    """SoD-2 bypass of the review: run stage 3 as one id, sign off as its look-alike."""
    write_roster(world, lambda people: people.update({f"{CYRILLIC_A}gus": copy.deepcopy(people["eko"])}))
    with pytest.raises(PolicyError, match="U\\+0430 CYRILLIC SMALL LETTER A"):
        _ = Engine(Store(), out=open(os.devnull, "w")).roster


# --------------------------------------------------------------------------------------------
# the identity file and keygen

@pytest.mark.parametrize("bad", ["budi\n", f"{CYRILLIC_A}gus", "BUDI", "budi "])
def test_identity_file_with_a_bad_id_is_refused(world, bad):
    ident = world.identity("budi")
    data = yaml.safe_load(ident.read_text())
    data["id"] = bad
    ident.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(Refusal, match=r"^refused \(ID-1: identity .*: id: person id \""):
        ap.load_identity(ident)


def test_sopctl_as_budi_newline_is_refused_before_any_approval(world, monkeypatch):
    """SoD-1 bypass of the review: the requester signs the plan under ``budi\\n``."""
    assert world.sopctl("budi", "submit", str(world.cr())).returncode == 0
    ident = world.identity("budi")
    ident.write_text(ident.read_text().replace("id: budi", 'id: "budi\\n"'))
    proc = world.sopctl("budi", "approve", "CHG-2026-9001", "--gate", "plan", "--comment", "ok")
    assert proc.returncode == 3
    assert 'ID-1: identity' in proc.stderr and 'person id "budi\\n" contains U+000A' in proc.stderr


@pytest.mark.parametrize("bad", ["../../evil", "budi/x", "budi\n", f"{CYRILLIC_A}gus"])
def test_keygen_refuses_a_bad_id_and_writes_nothing(tmp_path, bad):
    target = tmp_path / "ids"
    with pytest.raises(PolicyError, match=r"^identity keygen --id: person id "):
        ap.keygen(bad, target)
    assert not target.exists()
    assert not list(tmp_path.rglob("*.key"))


def test_sopctl_identity_keygen_with_a_path_in_the_id_exits_2(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "controller"), SOPCTL_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, "-m", "sopctl.cli", "identity", "keygen", "--id", "../../evil", "--dir",
                           str(tmp_path / "ids")], capture_output=True, text=True, env=env, check=False, timeout=60)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert 'person id "../../evil" does not match' in proc.stderr
    assert not (tmp_path / "evil.key").exists() and not (tmp_path / "ids").exists()


# --------------------------------------------------------------------------------------------
# change ids on the command line and in the store

def test_change_id_with_a_trailing_newline_cannot_be_registered_beside_the_real_one(world, monkeypatch):
    monkeypatch.setenv("SOPCTL_IDENTITY", str(world.identity("budi")))
    eng = Engine(Store(), out=open(os.devnull, "w"))
    eng.submit(world.cr(), world.inventory, "budi")
    path = world.cr(change_id="CHG-2026-9001\n", path=world.tmp / "twin.yml")
    with pytest.raises(Exception, match="id: contains U\\+000A at position 13") as info:
        eng.submit(path, world.inventory, "budi")
    assert info.value.code == EXIT_USAGE
    assert [c["id"] for c in eng.store.list_changes()] == ["CHG-2026-9001"]


@pytest.mark.parametrize("bad", ["CHG-2026-9001\n", "../../../etc", "CHG-2026-9001/../x", "CHG-2026-\u0669001"])
def test_store_refuses_malformed_change_ids_everywhere(tmp_path, bad):
    store = Store(tmp_path / "home")
    for call in (lambda: store.get_change(bad), lambda: store.change_dir(bad), lambda: store.lock_path(bad),
                 lambda: store.start_stage_run(bad, "1", "i", "t", "eko", 1, "h")):
        with pytest.raises(PolicyError, match=r"change id: \""):
            call()
    row = {"id": bad, "title": "t", "requester": "budi", "cr_path": "/x", "cr": {}, "cr_digest": "0",
           "inventory": "/i", "targets": {}, "window_start": "s", "window_end": "e", "submitted_by": "budi"}
    with pytest.raises(PolicyError):
        store.insert_change(row)
    assert store.list_changes() == []
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["changes", "locks", "sopctl.db",
                                                                     "sopctl.db-shm", "sopctl.db-wal"]


def test_store_refuses_bad_people_gates_and_roles(tmp_path):
    store = Store(tmp_path / "home")
    base = {"change_id": "CHG-2026-0001", "gate": "plan", "person": "sari", "role": "it_manager",
            "decision": "approve", "comment": "", "binding": "b", "time": "t", "key_id": "k", "signature": "s"}
    for key, value, message in (("person", "sari\n", "person id"), ("gate", "plan\n", "approval gate"),
                                ("role", "qa ", "approval role"), ("decision", "approve\n", "approval decision")):
        with pytest.raises(PolicyError, match=message):
            store.add_approval(dict(base, **{key: value}))
    with pytest.raises(PolicyError, match="stage 1 operator: person id"):
        store.start_stage_run("CHG-2026-0001", "1", "i", "t", f"ek{CYRILLIC_A}", 1, "h")
    row = {"id": "CHG-2026-0001", "title": "t", "requester": "budi", "cr_path": "/x", "cr": {}, "cr_digest": "0",
           "inventory": "/i", "targets": {}, "window_start": "s", "window_end": "e", "submitted_by": "root\x1b[2J"}
    with pytest.raises(PolicyError, match="submitted_by: contains U\\+001B"):
        store.insert_change(row)


def test_sopctl_status_with_a_newline_in_the_change_id_exits_2(world):
    proc = world.sopctl(None, "status", "CHG-2026-9001\n")
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert 'change id: "CHG-2026-9001\\n" contains U+000A at position 13' in proc.stderr
