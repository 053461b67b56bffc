"""Unit tests of sopctl's policy side: roster, quorum, window, freeze, SoD, signatures, store."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from sopctl import approvals as ap
from sopctl import policy
from sopctl.errors import Refusal
from sopctl.policy import PolicyError
from sopctl.store import Store

from tests.fixtures.sopctl.world import World


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


def test_roster_loads_people_roles_keys_and_default_quorum(world):
    roster = policy.load_roster(world.tmp / "roster.yml")
    assert roster.person("sari").roles == ("it_manager",)
    assert roster.person("joko").roles == ("infrastructure", "qa")
    assert roster.quorum["plan"] == {"it_manager": 1, "users": 1, "security": 1}
    assert roster.problems() == []
    with pytest.raises(Refusal, match=r"ROLE-1: nobody is not in the roster"):
        roster.person("nobody")


@pytest.mark.parametrize(("doc", "message"), [
    ({"people": {"x": {"roles": ["ceo"]}}}, "unknown role"),
    ({"people": {"x": {"roles": ["qa"]}}, "quorum": {"lunch": {"qa": 1}}}, "unknown gate"),
    ({"people": {"x": {"roles": ["qa"]}}, "quorum": {"plan": {"qa": -1}}}, "count >= 0"),
    ({"nobody": 1}, "expected a mapping with 'people'"),
    ({"people": {"x": {"roles": ["qa"]}}, "quorum": {"plan": {"qa": True}}}, "count >= 0"),
    ({"people": {"x": {"roles": "qa"}}}, r"people\.\"x\"\.roles: must be a list of roles"),
    ({"people": {"x": {"roles": ["qa"], "public_key": 42}}}, "public_key: must be a PEM text"),
    ({"people": {7: {"roles": ["qa"]}}}, r"people\.7: person id must be a string, found integer"),
    ({"people": {"x": {"roles": ["qa\n"]}}}, r'unknown role\(s\) "qa\\n"'),
])
def test_roster_errors_name_the_problem(tmp_path, doc, message):
    path = tmp_path / "r.yml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PolicyError, match=message):
        policy.load_roster(path)


def test_freeze_calendar_must_hold_a_list_of_named_freezes(tmp_path):
    path = tmp_path / "freeze.yml"
    for doc, message in (({"freezes": {"name": "x"}}, "expected a mapping with a list 'freezes'"),
                         (["x"], "expected a mapping with a list 'freezes'"),
                         ({"freezes": [{"name": "a\u202eb", "start": "2027-03-05T00:00:00+07:00",
                                        "end": "2027-03-06T00:00:00+07:00"}]},
                          r"freezes\[0\]\.name: contains U\+202E RIGHT-TO-LEFT OVERRIDE at position 1")):
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(PolicyError, match=message):
            policy.load_freezes(path)


def test_skeleton_folds_lookalikes_and_id_checks_name_the_place():
    assert policy.skeleton("\u0430gus") == policy.skeleton("AGUS") == policy.skeleton("agus") == "agus"
    assert policy.skeleton("rnarta") == policy.skeleton("marta")
    assert policy.skeleton("budi.s") == policy.skeleton("budi-s") == policy.skeleton("budi_s")
    assert policy.skeleton("sari") != policy.skeleton("sara")
    assert policy.check_person_id("budi", "x") == "budi"
    with pytest.raises(PolicyError, match=r'^--id: person id "budi\\n" contains U\+000A at position 4'):
        policy.check_person_id("budi\n", "--id")
    assert policy.check_change_id("CHG-2026-0042") == "CHG-2026-0042"
    with pytest.raises(PolicyError, match=r'^change id: "CHG-2026-0042 " contains U\+0020'):
        policy.check_change_id("CHG-2026-0042 ")


def test_roster_check_reports_short_quorum(tmp_path):
    path = tmp_path / "r.yml"
    path.write_text(yaml.safe_dump({"people": {"a": {"roles": ["it_manager"]}},
                                    "quorum": {"plan": {"it_manager": 2}}}))
    problems = policy.load_roster(path).problems()
    assert any("quorum 2 for role it_manager but only 1" in p for p in problems)
    assert any("no public key" in p for p in problems)
    assert any("infrastructure" in p for p in problems)


def test_window_inside_and_outside():
    start = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    end = start + timedelta(hours=4)
    policy.check_window(start, end, start)
    policy.check_window(start, end, end - timedelta(seconds=1))
    for now in (start - timedelta(seconds=1), end):
        with pytest.raises(Refusal, match="WINDOW-1: stage 3 runs only inside the approved window"):
            policy.check_window(start, end, now)


def test_freeze_calendar(tmp_path):
    path = tmp_path / "freeze.yml"
    path.write_text(yaml.safe_dump({"freezes": [
        {"name": "Lebaran", "start": "2027-03-05T00:00:00+07:00", "end": "2027-03-15T00:00:00+07:00"}]}))
    freezes = policy.load_freezes(path)
    inside = datetime(2027, 3, 10, tzinfo=UTC)
    with pytest.raises(Refusal, match=r"FREEZE-1: .*freeze period 'Lebaran'"):
        policy.check_freeze(freezes, inside)
    policy.check_freeze(freezes, datetime(2027, 3, 15, tzinfo=UTC))  # end is exclusive (17:00 UTC on the 14th)
    assert policy.freezes_overlapping(freezes, inside - timedelta(days=30), inside)
    assert not policy.freezes_overlapping(freezes, inside + timedelta(days=30), inside + timedelta(days=31))
    path.write_text(yaml.safe_dump({"freezes": [{"name": "naive", "start": "2027-03-05T00:00:00",
                                                 "end": "2027-03-06T00:00:00+07:00"}]}))
    with pytest.raises(PolicyError, match="no UTC offset"):
        policy.load_freezes(path)


def test_sod_rules():
    with pytest.raises(Refusal, match=r"^refused \(SoD-1: requester budi cannot approve the plan\)$"):
        policy.check_sod("plan", "it_manager", "budi", "budi", set(), {})
    policy.check_sod("signoff", "users", "budi", "budi", set(), {})  # the requester may sign off as a user
    with pytest.raises(Refusal, match="SoD-2: eko ran stage 3 and cannot give the qa sign-off"):
        policy.check_sod("signoff", "qa", "eko", "budi", {"eko"}, {})
    with pytest.raises(Refusal, match=r"SoD-2: .*security sign-off"):
        policy.check_sod("signoff", "security", "eko", "budi", {"eko"}, {})
    policy.check_sod("signoff", "users", "eko", "budi", {"eko"}, {})
    with pytest.raises(Refusal, match="SoD-3: joko already approved gate signoff as qa"):
        policy.check_sod("signoff", "users", "joko", "budi", set(), {"qa": ["joko"]})


def test_choose_role_respects_roster_and_change_request(world):
    roster = policy.load_roster(world.tmp / "roster.yml")
    cr = {"approvers": {"it_manager": ["sari"], "qa": ["rina"]}}
    assert policy.choose_role(roster, cr, "plan", "sari", None, {}) == "it_manager"
    with pytest.raises(Refusal, match="ROLE-1: eko holds none of the roles of gate plan"):
        policy.choose_role(roster, cr, "plan", "eko", None, {})
    with pytest.raises(Refusal, match="ROLE-2: the change request names rina as qa approver"):
        policy.choose_role(roster, cr, "signoff", "joko", None, {})
    with pytest.raises(Refusal, match="ROLE-1: gate close takes no approval from role qa"):
        policy.choose_role(roster, cr, "close", "rina", "qa", {})


def test_signature_binds_decision_and_detects_tampering(world):
    ident = ap.load_identity(world.identity("sari"))
    pem = policy.load_roster(world.tmp / "roster.yml").person("sari").public_key_pem
    binding = ap.binding_digest("CHG-2026-0001", "plan", "a" * 64, "b" * 64, ["production:h1"])
    row = ap.sign_decision(ident, {"change_id": "CHG-2026-0001", "gate": "plan", "person": "sari",
                                   "role": "it_manager", "decision": "approve", "comment": "ok",
                                   "binding": binding, "time": "2026-11-24T00:00:00Z"})
    assert ap.verify_decision(row, pem)
    for key, value in (("comment", "ok!"), ("decision", "reject"), ("person", "dewi"), ("binding", "0" * 64),
                       ("gate", "close"), ("time", "2026-11-24T00:00:01Z")):
        assert not ap.verify_decision(dict(row, **{key: value}), pem), key
    other = policy.load_roster(world.tmp / "roster.yml").person("dewi").public_key_pem
    assert not ap.verify_decision(row, other)
    assert not ap.verify_decision(dict(row, signature="zz"), pem)


def test_binding_changes_with_cr_plan_targets_and_gate():
    base = ("CHG-2026-0001", "plan", "a" * 64, "b" * 64, ["production:h1", "staging:s1"])
    ref = ap.binding_digest(*base)
    assert ap.binding_digest(*base[:4], list(reversed(base[4]))) == ref  # order of targets does not matter
    for i, value in ((1, "signoff"), (2, "c" * 64), (3, "d" * 64), (4, ["production:h1"])):
        changed = list(base)
        changed[i] = value
        assert ap.binding_digest(*changed) != ref


def test_identity_must_match_roster_and_be_private(world):
    ident = ap.load_identity(world.identity("sari"))
    roster = policy.load_roster(world.tmp / "roster.yml")
    ap.check_identity_matches(ident, roster.person("sari").public_key_pem)
    with pytest.raises(Refusal, match="ID-2: the private key of identity sari"):
        ap.check_identity_matches(ident, roster.person("dewi").public_key_pem)
    key = world.ids / "sari" / "sari.key"
    os.chmod(key, 0o644)
    with pytest.raises(Refusal, match=r"ID-1: private key .* is readable by others"):
        ap.load_identity(world.identity("sari"))
    with pytest.raises(Refusal, match="ID-1: no identity"):
        ap.load_identity(world.tmp / "missing.yml")


def test_store_wal_modes_and_schema_version(tmp_path):
    store = Store(tmp_path / "home")
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    assert store.schema_version() == 1
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.home.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.evidence_dir("CHG-2026-0001").stat().st_mode) == 0o700
    store.db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    store.close()
    with pytest.raises(Exception, match="schema version 99 is newer"):
        Store(tmp_path / "home")
