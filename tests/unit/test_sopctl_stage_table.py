"""The one stage table, the one state type and the one exception hierarchy of sopctl, and the
documents generated from the table: each idea defined once, and a test that a second stage list
cannot creep back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sopctl
from sopctl import docs, errors, stage_table, state
from sopctl.errors import EXIT_CODES, IllegalTransition, SopctlError
from sopctl.state import ChangeState

REPO = Path(__file__).resolve().parents[2]
CONTROLLER = REPO / "controller" / "sopctl"


def test_steps_walk_the_six_stages_with_their_gates_in_order():
    assert stage_table.STEPS == (
        ("stage", "1"), ("gate", "plan"), ("stage", "2"), ("evidence", "stage3"), ("stage", "3"),
        ("stage", "4"), ("gate", "signoff"), ("stage", "5"), ("gate", "close"), ("stage6", "6"))
    assert [s.number for s in stage_table.STAGES] == [str(n) for n in range(1, 7)]
    assert stage_table.GATE_AFTER == {"plan": "1", "signoff": "4", "close": "5"}
    assert stage_table.PLAYBOOK_STAGES == ("1", "2", "3", "4", "5")
    # the names the audit log and the status have always shown
    assert stage_table.stage("1").title == "Perencanaan / planning"
    assert stage_table.stage("6").title == "Dokumentasi dan evaluasi / closing"
    assert stage_table.stage("rollback").title == "Rollback"


def test_every_playbook_of_the_table_exists_in_the_collection():
    for s in (*stage_table.STAGES, stage_table.ROLLBACK):
        if s.playbook:
            assert (REPO / "playbooks" / s.playbook).is_file(), s
    assert stage_table.stage("6").playbook is None


def test_every_sop_step_is_mapped_once_and_names_known_evidence_roles_and_modules():
    numbers = [step.number for s in stage_table.STAGES for step in s.steps]
    assert numbers == [f"{t}.{n}" for t in range(1, 7) for n in range(1, 4)]
    for s in stage_table.STAGES:
        assert all(step.number.startswith(f"{s.number}.") for step in s.steps)
        for step in s.steps:
            assert set(step.evidence) <= set(stage_table.EVIDENCE_SOURCES), step
            for role in step.roles:
                assert (REPO / "roles" / role / "tasks").is_dir(), (step.number, role)
            for module in step.modules:
                assert (REPO / "plugins" / "modules" / f"{module}.py").is_file(), (step.number, module)


def test_legacy_state_strings_are_the_enum_values():
    legacy = ["submitted", "closed", "rolled_back", "cancelled", "rollback_running", "stagerollback_failed",
              "stage1_running", "stage3_done", "stage5_failed", "stage2_interrupted",
              "waiting_gate_plan", "waiting_gate_close", "rejected_at_signoff"]
    for value in legacy:
        assert ChangeState(value).value == value
    assert state.running("2") is ChangeState.STAGE2_RUNNING
    assert state.finished("4", "succeeded") is ChangeState.STAGE4_DONE
    assert state.finished("rollback", "failed").value == "stagerollback_failed"
    assert state.waiting("signoff").value == "waiting_gate_signoff"
    assert f"{ChangeState.CLOSED}" == "closed"


@pytest.mark.parametrize(("old", "new"), [
    ("closed", "stage1_running"), ("cancelled", "waiting_gate_plan"), ("rolled_back", "closed"),
    ("stage2_running", "stage3_done"), ("waiting_gate_plan", "stage1_done"), ("stage4_running", "rolled_back"),
])
def test_illegal_transitions_are_refused(old, new):
    assert not state.allowed(ChangeState(old), ChangeState(new))


@pytest.mark.parametrize(("old", "new"), [
    ("submitted", "stage1_running"), ("stage1_running", "stage1_done"), ("stage1_done", "waiting_gate_plan"),
    ("stage2_running", "stage2_running"), ("stage5_running", "rolled_back"), ("rollback_running",
                                                                             "stagerollback_done"),
    ("stagerollback_done", "rolled_back"), ("waiting_gate_close", "closed"), ("rejected_at_plan", "stage1_running"),
    ("stage2_done", "cancelled"),
])
def test_legal_transitions_are_allowed(old, new):
    assert state.allowed(ChangeState(old), ChangeState(new))


class _Store:
    def __init__(self, value):
        self.row = {"state": value}

    def get_change(self, change_id):
        return self.row

    def update_change(self, change_id, **fields):
        self.row.update(fields)


def test_set_state_raises_loudly_on_an_illegal_transition_and_writes_nothing():
    store = _Store("closed")
    with pytest.raises(IllegalTransition, match="illegal state transition closed -> stage1_running") as info:
        state.set_state(store, "CHG-2026-0001", ChangeState.STAGE1_RUNNING)
    assert info.value.code == errors.EXIT_INTERNAL == 70
    assert store.row["state"] == "closed"
    state.set_state(_Store("stage3_running"), "CHG-2026-0001", ChangeState.STAGE3_DONE)


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_controller_error_has_a_documented_exit_code():
    import sopctl.approvals
    import sopctl.changes
    import sopctl.collection
    import sopctl.policy
    import sopctl.store  # noqa: F401 - their error classes join the hierarchy

    classes = [SopctlError, *_subclasses(SopctlError)]
    assert {c.__name__ for c in classes} >= {"Refusal", "StageFailed", "InstallError", "CollectionNotFound",
                                              "PolicyError", "InvalidChangeRequest", "StoreError",
                                              "InternalError", "IllegalTransition"}
    table = (REPO / "docs" / "sopctl.md").read_text()
    for cls in classes:
        assert cls.code in EXIT_CODES, cls
    for code in EXIT_CODES:
        assert re.search(rf"\|\s*`?{code}`?\s*\|", table), f"exit code {code} is not in docs/sopctl.md"


def test_controller_raises_only_errors_of_the_hierarchy():
    """Every ``raise X(`` in the controller names a SopctlError (or an OSError the boundary maps to 4,
    or a ValueError caught where it is raised)."""
    names = {c.__name__ for c in [SopctlError, *_subclasses(SopctlError)]} | {"_IdentityUnreadable"}
    # naming(): an OSError given its path (exit 4 at the boundary); ValueError/_HeadersRefused are caught
    # where they are raised; KeyError: a stage without a playbook asked for one (a bug, exit 70)
    # error: the ``error: type[SopctlError]`` parameter of policy's file readers
    allowed_other = {"FileNotFoundError", "ValueError", "_HeadersRefused", "KeyError", "naming", "error"}
    for path in CONTROLLER.glob("*.py"):
        for raised in re.findall(r"raise ([A-Za-z_]+)\(", path.read_text()):
            assert raised in names | allowed_other, f"{path.name}: raise {raised}"


def test_docs_tables_agree_with_the_stage_table():
    assert docs.check(REPO) == []


def test_docs_check_names_a_table_that_disagrees(tmp_path):
    for rel in ("docs/sop.md", "docs/architecture.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((REPO / rel).read_text())
    sop = tmp_path / "docs" / "sop.md"
    sop.write_text(sop.read_text().replace("`playbooks/stage4_validate.yml`", "`playbooks/stage4_old.yml`"))
    assert docs.check(tmp_path) == ["docs/sop.md: table sop-map differs from the stage table "
                                    "(run: python -m sopctl.docs)"]
    assert docs.main(["--repo", str(tmp_path)]) == 0
    assert docs.check(tmp_path) == []


#: what a second stage list looks like: a stage playbook's file name, a stage's Indonesian name,
#: a literal run of the stage numbers, or a table of its own
STRAY = [
    re.compile(r"stage[1-6]_[a-z]+\.yml"),
    re.compile(r"perencanaan|persiapan teknis|pelaksanaan|pengujian dan validasi|implementasi dan monitoring|"
               r"dokumentasi dan evaluasi", re.I),
    re.compile(r"""["']1["']\s*,\s*["']2["']\s*,\s*["']3["']"""),
    re.compile(r"\b(STAGE_NAMES|STAGE_PLAYBOOKS|EVIDENCE_SOURCES|GATE_AFTER|STEPS)\s*(:[^=\n]*)?=(?!=)"),
]


def _outside_generated(text: str) -> str:
    return re.sub(r"<!-- BEGIN generated.*?<!-- END generated[^>]*-->", "", text, flags=re.S)


def test_no_second_stage_list_in_the_controller_or_its_documents():
    sources = [p for p in CONTROLLER.rglob("*") if p.suffix in (".py", ".j2") and p.name != "stage_table.py"]
    sources.append(REPO / "benchmarks" / "bench_sopctl.py")
    found = []
    for path in sources:
        text = path.read_text()
        found += [f"{path.relative_to(REPO)}: {m.group(0)!r}" for rx in STRAY for m in rx.finditer(text)]
    for rel in ("docs/sop.md", "docs/architecture.md", "docs/sopctl.md"):
        text = _outside_generated((REPO / rel).read_text())
        found += [f"{rel}: {m.group(0)!r}" for rx in STRAY[:3] for m in rx.finditer(text)]
        if rel != "docs/sopctl.md":  # its table of exit codes has rows | 1 | ... too
            found += [f"{rel}: stage table row {line!r}" for line in text.splitlines()
                      if re.match(r"\|\s*(\*\*)?(Tahap\s+)?[1-6](\*\*)?\s*\|", line)]
    assert found == []


def test_the_grep_finds_a_second_list(tmp_path):
    text = 'PLAYBOOKS = {"1": "stage1_plan.yml"}\nNAMES = ("Perencanaan", "Pelaksanaan")\nSTEPS = ("1", "2", "3")\n'
    hits = [m.group(0) for rx in STRAY for m in rx.finditer(text)]
    assert hits == ["stage1_plan.yml", "Perencanaan", "Pelaksanaan", '"1", "2", "3"', "STEPS ="]
    assert sopctl.__name__ == "sopctl"
