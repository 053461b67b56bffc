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

Identifiers (person ids, change ids, gate and role names) are plain ASCII and matched in full
(:func:`check_person_id`, :func:`check_change_id`): a look-alike letter from another script
(``agus`` written with a Cyrillic ``a``) or a trailing newline never names a second person or a
second change. Every place an id enters uses them: the roster, the identity file,
``identity keygen --id``, change ids on the command line and the store. Person-written files
(roster, freeze calendar, config, identity) are read through the collection's ``safe_input``
(:func:`load_document`).
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .collection import ensure_importable
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


#: size limits of the person-written files sopctl reads (bytes)
ROSTER_LIMIT = 1024 * 1024
FREEZE_LIMIT = 256 * 1024
PUBLIC_KEY_LIMIT = 64 * 1024


def _module_utils():
    ensure_importable()
    from ansible_collections.itsop.change.plugins.module_utils import change_request, safe_input

    return change_request, safe_input


def load_document(path: str | Path, what: str, limit: int, error: type[SopctlError] = SopctlError) -> Any:
    """Read and parse a person-written YAML/JSON file through ``safe_input`` (the one loader).

    A regular file of at most ``limit`` bytes, no YAML aliases/anchors/merge keys, no duplicate
    keys (named with both lines), bounded depth. Raises ``error`` (exit code 2) naming the file
    and, where known, the line.
    """
    _cr, safe_input = _module_utils()
    try:
        return safe_input.load_document_file(str(path), what=what, limit=limit)
    except safe_input.InputError as exc:
        raise error(str(exc)) from None


def read_small_file(path: str | Path, what: str, limit: int, error: type[SopctlError] = SopctlError) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (``safe_input.read_regular_file``)."""
    _cr, safe_input = _module_utils()
    try:
        return safe_input.read_regular_file(str(path), limit=limit, what=what)
    except safe_input.InputError as exc:
        raise error(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# identifiers

#: Latin look-alikes in Cyrillic and Greek (lower case, after NFKC and casefold), and ASCII
#: sequences that read alike on a screen; used to say what a refused id looks like and to
#: refuse two roster ids that read alike
_CONFUSABLES = {
    "\u0430": "a", "\u0432": "b", "\u0435": "e", "\u0451": "e", "\u043d": "h", "\u0456": "i", "\u0457": "i",
    "\u0458": "j", "\u043a": "k", "\u043c": "m", "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0455": "s",
    "\u0442": "t", "\u0443": "y", "\u0445": "x", "\u0501": "d", "\u051b": "q", "\u051d": "w", "\u04bb": "h",
    "\u04cf": "l", "\u0491": "r",
    "\u03b1": "a", "\u03b2": "b", "\u03b5": "e", "\u03b7": "n", "\u03b9": "i", "\u03ba": "k", "\u03bd": "v",
    "\u03bf": "o", "\u03c1": "p", "\u03c4": "t", "\u03c5": "u", "\u03c7": "x", "\u03c9": "w", "\u03f2": "c",
    "\u0131": "i", "\u0261": "g", "\u1d00": "a",
}
_ASCII_LOOKALIKES = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"), ("|", "l"), ("_", "."), ("-", "."))


def skeleton(value: str) -> str:
    """What an id reads as: NFKC, case folded, look-alike letters folded to one Latin letter.

    ``skeleton("\u0430gus") == skeleton("AGUS") == skeleton("agus") == "agus"``; two roster ids with
    one skeleton are refused. Format characters (zero-width spaces, bidi controls) are dropped.
    """
    text = _latin_reading(value)
    for seq, repl in _ASCII_LOOKALIKES:
        text = text.replace(seq, repl)
    return text


def _latin_reading(value: str) -> str:
    """NFKC, case folded, Cyrillic/Greek look-alikes as Latin letters, accents and format characters dropped."""
    text = unicodedata.normalize("NFKC", value).casefold()
    text = "".join(_CONFUSABLES.get(ch, ch) for ch in text if unicodedata.category(ch) != "Cf")
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def _shown(value: Any) -> str:
    """An id as it may be printed: JSON-quoted with every non-ASCII or control character escaped."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def id_problem(value: Any, kind: str = "person") -> str | None:
    """None when ``value`` is a valid ``kind`` id (``person`` or ``change``), else why not."""
    cr, _safe = _module_utils()
    pattern = cr.PERSON_ID_PATTERN if kind == "person" else cr.CHANGE_ID_PATTERN
    problem = cr.id_problem(value, pattern)
    if problem and isinstance(value, str) and any(ord(ch) > 126 for ch in value):
        reads = _latin_reading(value)
        if reads != value and cr.pattern_matches(pattern, reads):
            problem += f" (it reads as {reads})"
    return problem


def check_person_id(value: Any, where: str) -> str:
    """``value`` if it is a person id (plain ASCII, full match of the CR schema's pattern)."""
    problem = id_problem(value, "person")
    if problem:
        raise PolicyError(f"{where}: person id {problem}")
    return value


def check_change_id(value: Any, where: str = "change id") -> str:
    """``value`` if it is a change id (``CHG-YYYY-NNNN``, plain ASCII, full match)."""
    problem = id_problem(value, "change")
    if problem:
        raise PolicyError(f"{where}: {problem}")
    return value


def check_name(value: Any, choices: tuple[str, ...] | list[str], where: str) -> str:
    """``value`` if it is exactly one of ``choices`` (gate and role names)."""
    if not isinstance(value, str) or value not in choices:
        raise PolicyError(f"{where}: {_shown(value)} is not one of {', '.join(choices)}")
    return value


def check_text(value: Any, where: str) -> str:
    """``value`` if it is one line of text without control, format or bidi characters."""
    cr, _safe = _module_utils()
    if not isinstance(value, str):
        raise PolicyError(f"{where}: must be text, found {type(value).__name__}")
    problem = cr.text_problem(value)
    if problem:
        raise PolicyError(f"{where}: {problem}")
    return value


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
    data = load_document(path, "roster", ROSTER_LIMIT, PolicyError)
    if not isinstance(data, dict) or not isinstance(data.get("people"), dict):
        raise PolicyError(f"roster {path}: expected a mapping with 'people'")
    people: dict[str, Person] = {}
    seen: dict[str, str] = {}
    for pid, spec in data["people"].items():
        where = f"roster {path}: people.{_shown(pid)}"
        check_person_id(pid, where)
        other = seen.get(skeleton(pid))
        if other is not None:
            raise PolicyError(f"{where}: looks like people.{other} (both read as {skeleton(pid)}); "
                              "person ids must not be look-alikes of each other")
        seen[skeleton(pid)] = pid
        if not isinstance(spec, dict):
            raise PolicyError(f"{where} must be a mapping")
        roles = spec.get("roles") or []
        if not isinstance(roles, list):
            raise PolicyError(f"{where}.roles: must be a list of roles (known: {', '.join(ROLES)})")
        bad = [r for r in roles if r not in ROLES]
        if bad:
            raise PolicyError(f"{where}.roles: unknown role(s) {', '.join(map(_shown, bad))} "
                              f"(known: {', '.join(ROLES)})")
        if spec.get("name") is not None:
            check_text(spec["name"], f"{where}.name")
        pem = spec.get("public_key")
        if pem is not None and not isinstance(pem, str):
            raise PolicyError(f"{where}.public_key: must be a PEM text")
        if spec.get("public_key_file"):
            kf = Path(str(spec["public_key_file"])).expanduser()
            kf = kf if kf.is_absolute() else path.parent / kf
            raw = read_small_file(kf, f"{where}.public_key_file", PUBLIC_KEY_LIMIT, PolicyError)
            try:
                pem = raw.decode("ascii")
            except UnicodeDecodeError:
                raise PolicyError(f"{where}.public_key_file: {kf} is not an ASCII PEM file") from None
        if pem is not None and not pem.isascii():
            raise PolicyError(f"{where}.public_key: not an ASCII PEM text")
        people[pid] = Person(pid, str(spec.get("name") or pid), tuple(roles),
                             pem.encode("ascii") if pem else None)
    quorum = {g: dict(r) for g, r in DEFAULT_QUORUM.items()}
    q = data.get("quorum") or {}
    if not isinstance(q, dict):
        raise PolicyError(f"roster {path}: quorum must map gates to {{role: count}}")
    for gate, roles in q.items():
        if gate not in DEFAULT_QUORUM:
            raise PolicyError(f"roster {path}: quorum.{_shown(gate)}: unknown gate "
                              f"(known: {', '.join(DEFAULT_QUORUM)})")
        if not isinstance(roles, dict):
            raise PolicyError(f"roster {path}: quorum.{gate} must map roles to counts")
        for role, need in roles.items():
            if role not in ROLES or isinstance(need, bool) or not isinstance(need, int) or need < 0:
                raise PolicyError(f"roster {path}: quorum.{gate}.{_shown(role)}: need a known role and a count >= 0")
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
    data = load_document(path, "freeze calendar", FREEZE_LIMIT, PolicyError) or {}
    if not isinstance(data, dict) or not isinstance(data.get("freezes") or [], list):
        raise PolicyError(f"freeze calendar {path}: expected a mapping with a list 'freezes'")
    out = []
    for i, item in enumerate(data.get("freezes") or []):
        where = f"freeze calendar {path}: freezes[{i}]"
        if not isinstance(item, dict) or not item.get("name"):
            raise PolicyError(f"{where}: needs name, start and end")
        check_text(item["name"], where + ".name")
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
