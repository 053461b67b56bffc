"""The evidence contract (issue 22): one envelope, one verdict rule, one JSON Schema per kind, one
loader. Real evidence from the end-to-end demo is checked against the schemas in tests/e2e."""

from __future__ import annotations

import json
import re

import pytest
from ansible.errors import AnsibleFilterError
from jsonschema import Draft202012Validator
from sopctl import evidence as loader

from ansible_collections.itsop.change.plugins.filter.evidence import FilterModule
from ansible_collections.itsop.change.plugins.module_utils._evidence import envelope
from tests.fixtures.evidence import BODIES, doc
from tests.helpers import REPO

SCHEMAS = REPO / "schemas" / "evidence"
CID = "CHG-2026-0042"


def test_passed_follows_from_reasons_and_nothing_else():
    assert envelope.wrap({"x": 1}, "staging", CID) == {
        "x": 1, "kind": "staging", "version": 1, "change_id": CID, "host": None, "passed": True, "reasons": []}
    failed = envelope.wrap({}, "execution", CID, host="prd-1", reasons=[" prd-1: HTTP 500 "])
    assert failed["passed"] is False and failed["reasons"] == ["prd-1: HTTP 500"] and failed["host"] == "prd-1"


@pytest.mark.parametrize("body, kind, change_id, host, reasons, message", [
    ({}, "stagin", CID, None, [], "unknown evidence kind 'stagin'"),
    ({}, "staging", "", None, [], "needs a change_id"),
    ({}, "staging", None, None, [], "needs a change_id"),
    ({}, "backup", CID, "", [], "host must be a host name or null"),
    ({"passed": True}, "staging", CID, None, ["x"], "carries envelope or verdict field(s) passed"),
    ({"complete": True}, "backup", CID, "h", [], "carries envelope or verdict field(s) complete"),
    ({"verdict": "passed", "result": "passed"}, "artifacts", CID, None, [], "field(s) result, verdict"),
    ({}, "staging", CID, None, "HTTP 500", "reasons must be a list of strings"),
    ({}, "staging", CID, None, ["ok", ""], "reasons[1] must be a non-empty string"),
    ({}, "staging", CID, None, [None], "reasons[0] must be a non-empty string"),
    ([], "staging", CID, None, [], "body must be a mapping"),
])
def test_a_producer_cannot_write_a_document_that_breaks_the_contract(body, kind, change_id, host, reasons, message):
    with pytest.raises(envelope.EvidenceError, match=re.escape(message)):
        envelope.wrap(body, kind, change_id, host=host, reasons=reasons)
    # the roles meet the same refusal through the filter, named
    with pytest.raises(AnsibleFilterError, match=r"^itsop\.change\.evidence: .*" + re.escape(message)):
        FilterModule().filters()["evidence"](body, kind, change_id=change_id, host=host, reasons=reasons)


def test_one_schema_per_kind_and_each_is_a_valid_schema():
    files = {p.name for p in SCHEMAS.glob("*.json")}
    assert files == {f"{k}.v1.json" for k in envelope.KINDS} | {"envelope.v1.json"}
    for path in SCHEMAS.glob("*.json"):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        assert schema["$id"].endswith("/evidence/" + path.name)
    env = json.loads((SCHEMAS / "envelope.v1.json").read_text())
    assert env["properties"]["kind"]["enum"] == list(envelope.KINDS)
    assert env["required"] == list(envelope.ENVELOPE_KEYS)
    assert sorted(BODIES) == sorted(envelope.KINDS)


@pytest.mark.parametrize("kind", envelope.KINDS)
def test_the_schema_of_each_kind_accepts_its_document_and_refuses_a_contradiction(kind):
    host = "h1" if json.loads((SCHEMAS / f"{kind}.v1.json").read_text())["properties"]["host"] != {"type": "null"} \
        else None
    good = doc(kind, CID, host=host)
    assert loader.schema_problems(good, kind) == []
    assert loader.schema_problems(doc(kind, CID, host=host, reasons=["it broke"]), kind) == []
    assert any("is not valid" in p or "should be non-empty" in p or "expected" in p or "is too" in p
               for p in loader.schema_problems({**good, "passed": False}, kind)), kind       # no reason given
    assert loader.schema_problems({**good, "reasons": ["x"]}, kind)                          # passed with a reason
    assert loader.schema_problems({**good, "verdict": "passed"}, kind)                       # a second verdict field
    assert loader.schema_problems({**good, "kind": "plan" if kind != "plan" else "backup"}, kind)
    assert loader.schema_problems({k: v for k, v in good.items() if k != "reasons"}, kind)


def test_the_loader_reads_the_envelope_and_fails_closed(tmp_path):
    path = tmp_path / "staging.json"
    missing = loader.load(path, "staging", CID)
    assert missing.missing and not missing.passed and missing.verdict is None
    path.write_text(json.dumps(doc("staging", CID, reasons=["stg-1: HTTP 500"])))
    failed = loader.load(path, "staging", CID)
    assert (failed.passed, failed.reasons, failed.verdict, failed.invalid) == (False, ["stg-1: HTTP 500"], "failed", [])
    path.write_text(json.dumps(doc("staging", CID)))
    ok = loader.load(path, "staging", CID)
    assert ok.passed and ok.verdict == "passed" and ok.body["kind"] == "staging"
    other = loader.load(path, "staging", "CHG-2026-0043")
    assert not other.passed and other.invalid == ["change_id is 'CHG-2026-0042', expected 'CHG-2026-0043'"]
    path.write_text('{"passed": true, "passed": true}')
    dup = loader.load(path, "staging", CID)
    assert not dup.passed and "duplicate key" in dup.reasons[0] and dup.doc is None
    with pytest.raises(ValueError, match="unknown evidence kind"):
        loader.load(path, "stagin", CID)


def test_verdict_logic_has_one_home():
    """Nothing in the controller decides 'passed' from an evidence document but sopctl/evidence.py,
    and no producer writes a verdict field of its own (the envelope's passed is the only one)."""
    controller = REPO / "controller" / "sopctl"
    offenders = []
    for path in controller.glob("*.py"):
        text = path.read_text()
        if path.name == "evidence.py":
            continue
        for pattern in (r"def _?(verdict|passed)\(", r"read_json_file\(", r"_evidence import envelope",
                        r"\.get\(\"complete\"\)", r"\[\"(verdict|result|complete)\"\]"):
            if path.name == "store.py" and pattern == r"read_json_file\(":
                continue  # its definition
            offenders += [f"{path.name}: {m.group(0)}" for m in re.finditer(pattern, text)]
    for path in [*(REPO / "playbooks").rglob("*.yml"), *(REPO / "roles").glob("*/tasks/**/*.yml"),
                 *(REPO / "roles").glob("*/templates/*.j2")]:
        for m in re.finditer(r"(?m)^\s+(verdict|complete|result|healthy):\s*(passed|failed|true|false|\"\{\{)"
                             r"|kind: itsop\.change\.|'complete':", path.read_text()):
            if path.name == "watch.yml" and m.group(1) == "healthy":
                continue  # a host's monitoring sample (monitor_result.healthy), inside the evidence body
            offenders.append(f"{path.relative_to(REPO)}: {m.group(0).strip()}")
    assert offenders == []
