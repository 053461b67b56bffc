"""Run a stage playbook through ansible-runner and read its summary from the runner events.

One private data directory per change (``<change>/runner``), one ``ident`` per stage run
(``stage<N>-<UTC timestamp>``). The audit callback ``itsop.change.audit_log`` is enabled with the
change id, stage and operator in its environment and writes into the change's audit directory.
The stage summary is the ``set_stats`` key ``itsop_stage<N>`` of the ``playbook_on_stats`` event
(``event_data.artifact_data``).

Playbooks come from the collection (``<collection>/playbooks``). ``SOPCTL_PLAYBOOK_DIR`` overrides
that directory: **for tests only** (the integration tests use small playbooks of their own).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from . import textsafe
from .collection import ensure_importable
from .stage_table import stage as stage_record

AUDIT_CALLBACK = "itsop.change.audit_log"


def playbook_dir() -> Path:
    env = os.environ.get("SOPCTL_PLAYBOOK_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return ensure_importable() / "playbooks"


def playbook_path(stage: str) -> Path:
    """The playbook of ``stage`` (``1``..``5`` or ``rollback``), from the stage table."""
    playbook = stage_record(stage).playbook
    if playbook is None:
        raise KeyError(f"stage {stage} runs no playbook")
    return playbook_dir() / playbook


@dataclass
class RunResult:
    status: str  # successful | failed | canceled | timeout | error
    rc: int | None
    ident: str
    summary: dict[str, Any] | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    artifact_dir: str = ""


class Progress:
    """Live progress per stage and host: compact lines on a tty, plain lines otherwise, JSON lines."""

    def __init__(self, stage: str, out: TextIO | None = None, mode: str | None = None) -> None:
        self.stage = stage
        self.out = out or sys.stdout
        self.mode = mode or ("tty" if self.out.isatty() else "plain")
        self._live = False
        self._task = ""

    def _line(self, text: str, live: bool = False) -> None:
        if self.mode == "tty":
            textsafe.control(self.out, "\r\033[K")  # sopctl's own control sequence; the text is neutralised
            self.out.write(textsafe.one_line(text) + ("" if live else "\n"))
            self._live = live
        else:
            if live:
                return
            self.out.write(textsafe.one_line(text) + "\n")
        self.out.flush()

    def emit(self, kind: str, **data: Any) -> None:
        if self.mode == "json":
            self.out.write(json.dumps(dict(data, event=kind, stage=self.stage), sort_keys=True) + "\n")
            self.out.flush()
            return
        prefix = f"[stage {self.stage}]"
        if kind == "task":
            self._task = data.get("task") or ""
            self._line(f"{prefix} TASK {self._task}", live=True)
        elif kind == "host":
            status = data.get("status")
            if self.mode == "tty" and status in ("ok", "skipped") and not data.get("changed"):
                self._line(f"{prefix} {data.get('host')}: {status} - {data.get('task')}", live=True)
            else:
                tag = "changed" if data.get("changed") else status
                msg = f" - {data['msg']}" if data.get("msg") else ""
                self._line(f"{prefix} {data.get('host')}: {tag} - {data.get('task')}{msg}")
        elif kind == "play":
            self._line(f"{prefix} PLAY {data.get('play')}")
        elif kind == "status":
            self._line(f"{prefix} runner {data.get('status')}")
        elif kind == "recap":
            for host, counts in sorted((data.get("hosts") or {}).items()):
                parts = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
                self._line(f"{prefix} RECAP {host}: {parts}")


def _host_counts(stats: dict[str, Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored"):
        for host, n in (stats.get(key) or {}).items():
            out.setdefault(host, {})[key] = n
    return out


TEMPLATE_MARKERS = ("{{", "{%", "{#")


class _UntrustedDumper(yaml.SafeDumper):
    """YAML in which every string that Ansible would evaluate as a template is tagged ``!unsafe``.
    Only those: ansible-core 2.19 resolves the value of an ``!unsafe`` scalar again as if it were
    unquoted (``"123"`` would become a number, ``"*"`` an error); a string holding a template marker
    resolves to a string."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    tag = "!unsafe" if any(marker in value for marker in TEMPLATE_MARKERS) else "tag:yaml.org,2002:str"
    return dumper.represent_scalar(tag, value, style='"')


_UntrustedDumper.add_representer(str, _represent_str)


def write_extravars(path: Path, extravars: dict[str, Any]) -> Path:
    """The run's extra vars as data, never as templates. Ansible templates the strings of extra vars
    given as JSON or a mapping, so a change request holding ``{{ lookup('pipe', ...) }}`` in any field
    would run a command on the controller; such strings are marked ``!unsafe`` here."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.dump(extravars, handle, Dumper=_UntrustedDumper, allow_unicode=True, sort_keys=True)
    return path


def run_stage(*, stage: str, playbook: Path, private_data_dir: Path, inventory: str, change_id: str,
              cr: dict[str, Any], evidence_dir: Path, audit_dir: Path, operator: str, token: str,
              ident: str, progress: Progress, cancel: Callable[[], bool],
              signing_key: str | None = None, backup_record_key: str | None = None) -> RunResult:
    import ansible_runner

    collection = ensure_importable()
    coll_parent = str(collection.parents[2])
    env_path = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
    callbacks = [c for c in os.environ.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c.strip()]
    if AUDIT_CALLBACK not in callbacks:
        callbacks.append(AUDIT_CALLBACK)
    envvars = {
        "ITSOP_CHANGE_ID": change_id,
        "ITSOP_STAGE": stage,
        "ITSOP_OPERATOR": operator,
        "ITSOP_AUDIT_DIR": str(audit_dir),
        "ITSOP_RUN_ID": ident,
        "SOPCTL_RUN_TOKEN": token,
        "ANSIBLE_CALLBACKS_ENABLED": ",".join(callbacks),
        "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(p for p in (coll_parent, env_path) if p),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "ANSIBLE_NOCOLOR": "1",
    }
    if signing_key:
        envvars["ITSOP_AUDIT_SIGNING_KEY"] = signing_key
    if backup_record_key:  # a path: the key itself never enters the runner's files
        envvars["ITSOP_BACKUP_RECORD_KEY_FILE"] = backup_record_key
    extravars = {
        "itsop_change_id": change_id,
        "itsop_stage": stage,
        "itsop_change": cr,
        "itsop_evidence_dir": str(evidence_dir),
        "itsop_operator": operator,
    }
    summary_key = f"itsop_stage{stage}"
    state: dict[str, Any] = {"summary": None, "stats": {}, "failures": []}
    lock = threading.Lock()

    def on_event(event: dict[str, Any]) -> bool:
        name = event.get("event")
        data = event.get("event_data") or {}
        with lock:
            if name == "playbook_on_play_start":
                progress.emit("play", play=data.get("play"))
            elif name == "playbook_on_task_start":
                progress.emit("task", task=data.get("task"))
            elif name in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped"):
                status = {"runner_on_ok": "ok", "runner_on_failed": "failed",
                          "runner_on_unreachable": "unreachable", "runner_on_skipped": "skipped"}[name]
                res = data.get("res") or {}
                msg = ""
                if status in ("failed", "unreachable"):
                    msg = " ".join(str(res.get("msg") or res.get("stderr") or "").split())[:300]
                    if res.get("_ansible_no_log"):
                        msg = "(output hidden: no_log)"
                    if not data.get("ignore_errors"):
                        state["failures"].append(f"{data.get('host')}: {data.get('task')}: {msg}")
                progress.emit("host", host=data.get("host"), task=data.get("task"), status=status,
                              changed=bool(res.get("changed")), msg=msg)
            elif name == "playbook_on_stats":
                artifact = data.get("artifact_data") or {}
                state["summary"] = artifact.get(summary_key)
                state["stats"] = {k: data.get(k) or {} for k in
                                  ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")}
                progress.emit("recap", hosts=_host_counts(state["stats"]))
        return True

    def on_status(status: dict[str, Any], runner_config: Any = None) -> None:
        progress.emit("status", status=status.get("status"))

    # ansible-runner writes env/envvars and env/extravars once and then *reuses* them: keep the
    # values in memory (suppress_env_files) and remove stale files so every run gets its own.
    for stale in ("envvars", "extravars", "settings", "cmdline"):
        try:
            (Path(private_data_dir) / "env" / stale).unlink()
        except FileNotFoundError:
            pass
    # env/ never enters the archive; the file is removed once the run ends
    extravars_file = write_extravars(Path(private_data_dir) / "env" / "itsop-extravars.yml", extravars)
    try:
        r = ansible_runner.run(
            private_data_dir=str(private_data_dir), playbook=str(playbook), inventory=str(inventory),
            cmdline=f"-e @{shlex.quote(str(extravars_file))}", envvars=envvars, ident=ident,
            event_handler=on_event, status_handler=on_status, cancel_callback=cancel, quiet=True,
            rotate_artifacts=0, suppress_env_files=True,
        )
    finally:
        extravars_file.unlink(missing_ok=True)
    return RunResult(status=r.status, rc=r.rc, ident=ident, summary=state["summary"], stats=state["stats"],
                     failures=state["failures"], artifact_dir=str(Path(private_data_dir) / "artifacts" / ident))


def processes_with_token(token: str) -> list[int]:
    """PIDs whose environment carries ``SOPCTL_RUN_TOKEN=<token>`` (a stage run still alive)."""
    needle = f"SOPCTL_RUN_TOKEN={token}".encode()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                env = handle.read().split(b"\0")
        except OSError:
            continue
        if needle in env:
            out.append(int(entry))
    return out
