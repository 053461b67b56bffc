"""The one table of the six SOP stages (Tahap 1-6): everything that lists stages reads it.

Each :class:`Stage` names its number, its Indonesian and English name, the playbook that runs it
(``None`` for stage 6: the IT manager's closing approval and the report/archive hooks), the gate
after it, the evidence kinds it produces and the SOP steps it covers (``SopStep``: roles, modules,
evidence, the ``sopctl`` command). The runner takes its playbooks from here, the engine its steps
(:data:`STEPS`), the report its evidence sources (:data:`EVIDENCE_SOURCES`), and
:mod:`sopctl.docs` generates the tables of ``docs/sop.md`` and ``docs/architecture.md`` from it
(a unit test fails when a document and the table disagree, or when a second stage list appears).
"""

from __future__ import annotations

from dataclasses import dataclass

#: people gates (signed approvals by roster roles), after the stage named in ``Stage.gate_after``
PEOPLE_GATES = ("plan", "signoff", "close")
#: the evidence gate between stage 2 and stage 3 (checked by the engine, nobody signs)
EVIDENCE_GATE = "evidence"
#: the first stage that changes production: only inside the window, and once it started a change
#: can no longer be cancelled or re-planned, only rolled back
PRODUCTION_STAGE = "3"


@dataclass(frozen=True)
class Evidence:
    """One kind of evidence: its key in the report, the SOP step it proves, where it comes from."""

    kind: str
    sop_step: str
    source: str


@dataclass(frozen=True)
class SopStep:
    """One step of the SOP (``1.1`` ... ``6.3``) and what the product does for it."""

    number: str
    text: str
    roles: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    command: str = "sopctl run"


@dataclass(frozen=True)
class Stage:
    number: str
    name_id: str
    name_en: str
    playbook: str | None
    gate_after: str | None
    evidence: tuple[Evidence, ...]
    steps: tuple[SopStep, ...] = ()
    #: the evidence files as docs/architecture.md lists them, and the gate that reads them
    files: str = ""
    read_by: str = ""

    @property
    def title(self) -> str:
        """``Indonesian / English`` (the name in the audit log, the status and the progress)."""
        return self.name_id if self.name_en == self.name_id else f"{self.name_id} / {self.name_en}"

    @property
    def runs_playbook(self) -> bool:
        return self.playbook is not None


def _ev(kind: str, sop_step: str, source: str) -> Evidence:
    return Evidence(kind, sop_step, source)


STAGES: tuple[Stage, ...] = (
    Stage("1", "Perencanaan", "planning", "stage1_plan.yml", "plan",
          (_ev("change_request", "1.1-1.2", "change_request.json (store)"),
           _ev("plan", "1.3", "evidence/stage1/plan.json"),
           _ev("rollback_plan", "1.3", "change request rollback.plan")),
          (SopStep("1.1", "need (business request or security recommendation)", evidence=("change_request",),
                   modules=("change_request_info",), command="sopctl validate, sopctl submit"),
           SopStep("1.2", "impact and downtime", roles=("plan",), modules=("package_plan_info",),
                   evidence=("change_request", "plan")),
           SopStep("1.3", "work plan with schedule and resources", roles=("plan",),
                   modules=("package_plan_info",), evidence=("plan", "rollback_plan"))),
          files="`stage1/plan.json`, `stage1/plan.md`", read_by="plan approval (digest of plan.json)"),
    Stage("2", "Persiapan teknis dan backup", "preparation and backup", "stage2_prepare.yml", EVIDENCE_GATE,
          (_ev("backup", "2.1", "evidence/stage2/backup/<host>/checklist.json"),
           _ev("artifacts", "2.2", "evidence/stage2/artifacts/verification.json"),
           _ev("staging", "2.3", "evidence/stage2/staging.json")),
          (SopStep("2.1", "backup of data and configuration", roles=("backup",),
                   modules=("backup_snapshot", "backup_verify", "backup_prune"), evidence=("backup",)),
           SopStep("2.2", "valid, malware-free installation files", roles=("artifact_verify",),
                   modules=("artifact_verify",), evidence=("artifacts",)),
           SopStep("2.3", "staging simulation", roles=("update", "validate"),
                   modules=("functional_check", "security_baseline_info"), evidence=("staging",))),
          files="`stage2/backup/<host>/checklist.json` (+ archive and manifest in the backup store), "
                "`stage2/artifacts/verification.json`, `stage2/staging.json` (staging simulation verdict), "
                "`stage2/baseline/<host>.json`",
          read_by="evidence gate before stage 3"),
    Stage("3", "Pelaksanaan", "execution", "stage3_execute.yml", None,
          (_ev("execution", "3", "evidence/stage3/<host>.json, stage3/summary.json"),),
          (SopStep("3.1", "install or update in the approved window", roles=("update",),
                   modules=("change_window_info",), evidence=("execution",)),
           SopStep("3.2", "monitor the process (stop on failure, roll back)", roles=("update", "rollback"),
                   modules=("functional_check", "backup_restore"), evidence=("execution",)),
           SopStep("3.3", "document every step and configuration change", roles=("update",),
                   evidence=("execution", "audit_logs"))),
          files="`stage3/<host>.json` (before/after versions, config diffs, result, rollback), "
                "`stage3/summary.json`",
          read_by="stage 4 starts only after success"),
    Stage("4", "Pengujian dan validasi", "testing and validation", "stage4_validate.yml", "signoff",
          (_ev("functional_tests", "4.1", "evidence/stage4/<host>.json, stage4/junit.xml"),
           _ev("security_tests", "4.2", "evidence/stage4/security.json")),
          (SopStep("4.1", "functional testing", roles=("validate",), modules=("functional_check",),
                   evidence=("functional_tests",)),
           SopStep("4.2", "security testing (no new hole)", roles=("validate",), modules=("security_baseline_info",),
                   evidence=("security_tests",)),
           SopStep("4.3", "users' approval before full use", evidence=("approvals",),
                   command="sopctl approve --gate signoff")),
          files="`stage4/<host>.json`, `stage4/junit.xml`, `stage4/security.json`",
          read_by="QA, security, user sign-off"),
    Stage("5", "Implementasi dan monitoring", "go-live and monitoring", "stage5_golive.yml", "close",
          (_ev("monitoring", "5.2", "evidence/stage5/monitoring.json"),
           _ev("incidents", "5.3", "evidence/stage5/incidents.json, audit incident records")),
          (SopStep("5.1", "enable for all users", roles=("monitor",)),
           SopStep("5.2", "intensive monitoring after the update", roles=("monitor",), modules=("health_watch",),
                   evidence=("monitoring",)),
           SopStep("5.3", "handle disruptions at once (incident, automatic rollback)", roles=("monitor", "rollback"),
                   modules=("incident_notify", "backup_restore"), evidence=("incidents",),
                   command="sopctl run, sopctl rollback")),
          files="`stage5/monitoring.json`, `stage5/incidents.json`", read_by="closing"),
    Stage("6", "Dokumentasi dan evaluasi", "closing", None, None,
          (_ev("archive", "6", "sopctl archive (signed manifest)"),),
          (SopStep("6.1", "complete report", evidence=("approvals", "stage_runs", "audit_logs"),
                   command="sopctl approve --gate close, sopctl report"),
           SopStep("6.2", "evaluation of the problems met", evidence=("incidents",), command="sopctl report"),
           SopStep("6.3", "archive as audit reference", evidence=("archive",), command="sopctl archive")),
          files="`reports/`, `archive/` (under the change's directory)",
          read_by="stage 6 hooks (report, archive) after the close gate"),
)

#: the rollback playbook: run by ``sopctl rollback`` (and by the stages themselves), not a step
ROLLBACK = Stage("rollback", "Rollback", "Rollback", "rollback.yml", None, ())

#: evidence that belongs to no single stage
CROSS_STAGE_EVIDENCE: tuple[Evidence, ...] = (
    _ev("approvals", "1.4, 4.3, 6", "approvals (store), signatures checked against the roster"),
    _ev("stage_runs", "2-5", "stage runs (store): who executed which stage"),
    _ev("audit_logs", "all", "audit/*.jsonl (hash-chained)"),
)

BY_NUMBER: dict[str, Stage] = {s.number: s for s in (*STAGES, ROLLBACK)}
#: numbers of the stages ``sopctl run`` runs as playbooks (``--until`` choices)
PLAYBOOK_STAGES: tuple[str, ...] = tuple(s.number for s in STAGES if s.runs_playbook)
#: the stage whose success opens each people gate
GATE_AFTER: dict[str, str] = {s.gate_after: s.number for s in STAGES if s.gate_after in PEOPLE_GATES}
#: evidence kind -> (SOP step, where it comes from), for the report
EVIDENCE_SOURCES: dict[str, tuple[str, str]] = {
    e.kind: (e.sop_step, e.source) for e in (*(e for s in STAGES for e in s.evidence), *CROSS_STAGE_EVIDENCE)}


def stage(number: str) -> Stage:
    return BY_NUMBER[str(number)]


def steps() -> list[tuple[str, str]]:
    """The walk of ``sopctl run``: ``(kind, name)`` with kind ``stage``, ``gate``, ``evidence`` or
    ``stage6`` (the closing hooks), in order."""
    out: list[tuple[str, str]] = []
    for s in STAGES:
        out.append(("stage", s.number) if s.runs_playbook else ("stage6", s.number))
        if s.gate_after == EVIDENCE_GATE:
            out.append(("evidence", f"stage{int(s.number) + 1}"))
        elif s.gate_after:
            out.append(("gate", s.gate_after))
    return out


STEPS: tuple[tuple[str, str], ...] = tuple(steps())
