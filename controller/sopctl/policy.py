"""Policy (the enforceable part of *Dokumen Kebijakan Keamanan Informasi*): roster, quorum, freeze
calendar, change window and segregation-of-duties rules.

Every check raises :class:`sopctl.errors.Refusal` naming its rule, e.g.
``refused (SoD-1: requester budi cannot approve the plan)``.

Rules
  ROLE-1  the person does not hold the role in the roster
  ROLE-2  the change request names other approvers for that role
  ROLE-3  stages are run by members of the infrastructure team only
  SoD-1   the requester cannot approve the plan (any role of gate ``plan``)
  SoD-2   whoever ran stage 3 cannot give the QA or security sign-off
  SoD-3   one person counts for one role per gate
  WINDOW-1  stage 3 only inside the change window
  FREEZE-1  stage 3 never inside a freeze period
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from .errors import Refusal, SopctlError

ROLES = ("it_manager", "infrastructure", "security", "users", "qa")

#: people gates, in order, with the default quorum per role
DEFAULT_QUORUM: dict[str, dict[str, int]] = {
    "plan": {"it_manager": 1, "users": 1, "security": 1},
    "signoff": {"qa": 1, "security": 1, "users": 1},
    "close": {"it_manager": 1},
}
GATE_TITLES = {
    "plan": "plan approval (IT manager), downtime approval (users), pre-change risk evaluation (security)",
    "signoff": "sign-off before full use (QA, security, users)",
    "close": "closing approval (IT manager, Tahap 6)",
}


class PolicyError(SopctlError):
    pass


def parse_time(value: Any, what: str) -> datetime:
    """An aware datetime from an ISO-8601 string (or a YAML datetime); naive times are refused."""
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise PolicyError(f"{what}: not an ISO-8601 time: {value!r}") from exc
    if dt.tzinfo is None:
        raise PolicyError(f"{what}: time {value!r} has no UTC offset")
    return dt


@dataclass
class Person:
    id: str
    name: str
    roles: tuple[str, ...]
    public_key_pem: bytes | None


@dataclass
class Roster:
    path: Path
    people: dict[str, Person]
    quorum: dict[str, dict[str, int]] = field(default_factory=lambda: dict(DEFAULT_QUORUM))

    def person(self, pid: str) -> Person:
        try:
            return self.people[pid]
        except KeyError:
            raise Refusal("ROLE-1", f"{pid} is not in the roster {self.path}") from None

    def holders(self, role: str) -> list[str]:
        return sorted(p.id for p in self.people.values() if role in p.roles)

    def problems(self) -> list[str]:
        """Findings of ``sopctl roster check`` (empty when fine)."""
        out = []
        for gate, roles in self.quorum.items():
            for role, need in roles.items():
                have = self.holders(role)
                if len(have) < need:
                    out.append(f"gate {gate}: quorum {need} for role {role} but only {len(have)} "
                               f"in the roster ({', '.join(have) or 'nobody'})")
        for p in self.people.values():
            if p.public_key_pem is None:
                out.append(f"{p.id}: no public key (cannot approve or run stages)")
        if not self.holders("infrastructure"):
            out.append("nobody holds role infrastructure (nobody may run stages)")
        return out


def load_roster(path: str | Path) -> Roster:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"roster {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("people"), dict):
        raise PolicyError(f"roster {path}: expected a mapping with 'people'")
    people: dict[str, Person] = {}
    for pid, spec in data["people"].items():
        if not isinstance(spec, dict):
            raise PolicyError(f"roster {path}: people.{pid} must be a mapping")
        roles = spec.get("roles") or []
        bad = [r for r in roles if r not in ROLES]
        if bad:
            raise PolicyError(f"roster {path}: people.{pid}.roles: unknown role(s) {', '.join(map(str, bad))} "
                              f"(known: {', '.join(ROLES)})")
        pem = spec.get("public_key")
        if spec.get("public_key_file"):
            kf = Path(spec["public_key_file"]).expanduser()
            kf = kf if kf.is_absolute() else path.parent / kf
            try:
                pem = kf.read_text(encoding="ascii")
            except OSError as exc:
                raise PolicyError(f"roster {path}: people.{pid}.public_key_file: {exc}") from exc
        people[str(pid)] = Person(str(pid), str(spec.get("name") or pid), tuple(roles),
                                  pem.encode("ascii") if pem else None)
    quorum = {g: dict(r) for g, r in DEFAULT_QUORUM.items()}
    for gate, roles in (data.get("quorum") or {}).items():
        if gate not in DEFAULT_QUORUM:
            raise PolicyError(f"roster {path}: quorum.{gate}: unknown gate (known: {', '.join(DEFAULT_QUORUM)})")
        if not isinstance(roles, dict):
            raise PolicyError(f"roster {path}: quorum.{gate} must map roles to counts")
        for role, need in roles.items():
            if role not in ROLES or not isinstance(need, int) or need < 0:
                raise PolicyError(f"roster {path}: quorum.{gate}.{role}: need a known role and a count >= 0")
        quorum[gate] = {r: n for r, n in roles.items() if n > 0}
    return Roster(path, people, quorum)


@dataclass
class Freeze:
    name: str
    start: datetime
    end: datetime


def load_freezes(path: str | Path | None) -> list[Freeze]:
    """Freeze calendar: ``freezes: [{name, start, end}]`` (ISO-8601 with offsets, end exclusive)."""
    if not path:
        return []
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"freeze calendar {path}: {exc}") from exc
    out = []
    for i, item in enumerate(data.get("freezes") or []):
        where = f"freeze calendar {path}: freezes[{i}]"
        if not isinstance(item, dict) or not item.get("name"):
            raise PolicyError(f"{where}: needs name, start and end")
        start, end = parse_time(item.get("start"), where + ".start"), parse_time(item.get("end"), where + ".end")
        if end <= start:
            raise PolicyError(f"{where}: end is not after start")
        out.append(Freeze(str(item["name"]), start, end))
    return out


def now_utc() -> datetime:
    return datetime.now(UTC)


def check_window(start: datetime, end: datetime, now: datetime | None = None) -> None:
    now = now or now_utc()
    if not (start <= now < end):
        raise Refusal("WINDOW-1", f"stage 3 runs only inside the approved window {start.isoformat()} .. "
                                  f"{end.isoformat()}; now is {now.astimezone(start.tzinfo).isoformat()}")


def check_freeze(freezes: list[Freeze], now: datetime | None = None) -> None:
    now = now or now_utc()
    for f in freezes:
        if f.start <= now < f.end:
            raise Refusal("FREEZE-1", f"stage 3 is not allowed during the freeze period '{f.name}' "
                                      f"({f.start.isoformat()} .. {f.end.isoformat()})")


def freezes_overlapping(freezes: list[Freeze], start: datetime, end: datetime) -> list[Freeze]:
    return [f for f in freezes if f.start < end and start < f.end]


def check_may_run(roster: Roster, operator: str) -> None:
    person = roster.person(operator)
    if "infrastructure" not in person.roles:
        raise Refusal("ROLE-3", f"{operator} is not in the infrastructure team; only infrastructure runs stages")


def choose_role(roster: Roster, cr: dict[str, Any], gate: str, person_id: str, wanted: str | None,
                counted: dict[str, list[str]]) -> str:
    """The gate role ``person_id`` signs for (``wanted`` or the first one still needing approvals)."""
    person = roster.person(person_id)
    roles = list(roster.quorum.get(gate, {}))
    if wanted:
        if wanted not in roles:
            raise Refusal("ROLE-1", f"gate {gate} takes no approval from role {wanted} (roles: {', '.join(roles)})")
        candidates = [wanted]
    else:
        candidates = [r for r in roles if r in person.roles]
        if not candidates:
            raise Refusal("ROLE-1", f"{person_id} holds none of the roles of gate {gate} "
                                    f"({', '.join(roles)}); roster roles: {', '.join(person.roles) or 'none'}")
        open_roles = [r for r in candidates if len(counted.get(r, [])) < roster.quorum[gate][r]]
        candidates = open_roles or candidates
    role = candidates[0]
    if role not in person.roles:
        raise Refusal("ROLE-1", f"{person_id} does not hold role {role} in the roster")
    named = ((cr.get("approvers") or {}).get(role)) or []
    if named and person_id not in named:
        raise Refusal("ROLE-2", f"the change request names {', '.join(named)} as {role} approver(s), not {person_id}")
    return role


def check_sod(gate: str, role: str, person_id: str, requester: str, stage3_operators: set[str],
              counted: dict[str, list[str]]) -> None:
    if gate == "plan" and person_id == requester:
        raise Refusal("SoD-1", f"requester {person_id} cannot approve the plan")
    if gate == "signoff" and role in ("qa", "security") and person_id in stage3_operators:
        raise Refusal("SoD-2", f"{person_id} ran stage 3 and cannot give the {role} sign-off")
    for other_role, people in counted.items():
        if other_role != role and person_id in people:
            raise Refusal("SoD-3", f"{person_id} already approved gate {gate} as {other_role}; "
                                   f"one person counts for one role per gate")


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    return a_start < b_end and b_start < a_end
