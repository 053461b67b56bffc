"""One run at a time per change (an advisory lock file), and recovery of a run that was killed.

:func:`lock` takes ``<change>/lock`` (``flock``, non-blocking: a second ``sopctl run`` is refused
with LOCK-1). :func:`recover` finds stage runs still recorded ``running`` from a sopctl that is
gone: when no process carrying the run's token is alive, the run is recorded ``interrupted`` (not
done) and runs again; while one is alive the run is refused (LOCK-2).
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Callable
from typing import Any

from .changelog import ChangeLog
from .errors import Refusal
from .runner import processes_with_token
from .store import Store, utc_now


def lock(store: Store, change_id: str) -> int:
    """The lock of ``change_id`` as an open descriptor (close it to release)."""
    path = store.lock_path(change_id)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = ""
        try:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        except OSError:
            pass
        os.close(fd)
        raise Refusal("LOCK-1", f"{change_id} is already being run ({holder or 'another sopctl'}); "
                                "one stage run at a time per change") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {utc_now()}\n".encode(), 0)
    return fd


def recover(store: Store, change: dict[str, Any], log: ChangeLog, say: Callable[[str], None]) -> None:
    """Record the runs of a killed sopctl as interrupted (``log``: the change's audit log)."""
    for r in store.running_stage_runs(change["id"]):
        alive = processes_with_token(r["token"])
        if alive:
            raise Refusal("LOCK-2", f"stage {r['stage']} of {change['id']} from an interrupted sopctl (pid "
                                    f"{r['pid']}) still has running processes {alive}; wait for them or stop them")
        store.finish_stage_run(r["id"], "interrupted", message=f"sopctl pid {r['pid']} on {r['host']} "
                                                               "ended without recording a result")
        log.record("stage_interrupted", stage=r["stage"], ident=r["ident"], pid=r["pid"], host=r["host"],
                   started=r["started"], effect="recorded as interrupted (not done); the stage runs again")
        say(f"{change['id']}: stage {r['stage']} was interrupted (sopctl pid {r['pid']} on {r['host']}, "
            f"run {r['ident']}); it is not recorded as done and runs again")
