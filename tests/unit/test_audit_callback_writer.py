"""Unit tests of the writer used by the audit_log callback (AuditWriter) and callback helpers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.itsop.change.plugins.callback import audit_log
from ansible_collections.itsop.change.plugins.module_utils._audit import chain
from ansible_collections.itsop.change.plugins.module_utils._audit import keys
from ansible_collections.itsop.change.plugins.module_utils._audit import verify
from ansible_collections.itsop.change.plugins.module_utils._audit import writer
from ansible_collections.itsop.change.plugins.plugin_utils import audit_events
from tests.helpers import COLLECTIONS


def records(path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_bytes().splitlines()]


def test_create_in_dir_makes_private_dir_and_file(tmp_path):
    logs = tmp_path / "audit" / "logs"
    old = os.umask(0o022)
    try:
        w = writer.AuditWriter.create_in_dir(str(logs), run_id="r/1")
    finally:
        os.umask(old)
    w.append({"type": "note"})
    w.close()
    assert logs.stat().st_mode & 0o777 == 0o700
    path = Path(w.path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent == logs
    # <UTC yyyymmddThhmmssZ>-<run id, unsafe characters replaced>.jsonl
    name = path.name
    assert name.endswith("-r_1.jsonl") and name[8] == "T" and name[15] == "Z"
    assert verify.verify_log(path).ok


def test_writer_refuses_existing_file_and_symlink(tmp_path):
    target = tmp_path / "log.jsonl"
    target.write_text("")
    with pytest.raises(chain.AuditLogError, match="cannot create"):
        writer.AuditWriter(target, run_id="x")
    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(chain.AuditLogError):
        writer.AuditWriter(link, run_id="x")
    assert not (tmp_path / "elsewhere").exists()


def test_reserved_fields_and_missing_type_are_refused(tmp_path):
    w = writer.AuditWriter(tmp_path / "l.jsonl", run_id="x")
    with pytest.raises(chain.AuditLogError, match="writer-owned"):
        w.append({"type": "x", "seq": 5})
    with pytest.raises(chain.AuditLogError, match="needs a 'type'"):
        w.append({"host": "a"})
    w.close()
    w.close()  # idempotent
    with pytest.raises(chain.AuditLogError, match="closed"):
        w.append({"type": "late"})
    assert [r["type"] for r in records(tmp_path / "l.jsonl")] == ["checkpoint"]


def test_bad_fsync_mode(tmp_path):
    with pytest.raises(chain.AuditLogError, match="fsync must be one of"):
        writer.AuditWriter(tmp_path / "l.jsonl", fsync="sometimes")


@pytest.mark.parametrize("fsync", ["always", "checkpoint", "never"])
def test_periodic_and_final_checkpoints(tmp_path, fsync):
    w = writer.AuditWriter(tmp_path / "l.jsonl", run_id="x", checkpoint_every=4, fsync=fsync,
                       stamp={"stage": "2"})
    for i in range(9):
        w.append({"type": "result", "i": i, "stage": "3" if i == 0 else "2"})
    w.close()
    recs = records(tmp_path / "l.jsonl")
    cps = [r for r in recs if r["type"] == "checkpoint"]
    assert [c["count"] for c in cps] == [4, 9, 11]
    assert [c["final"] for c in cps] == [False, False, True]
    assert recs[0]["stage"] == "3" and recs[1]["stage"] == "2"  # record fields win over the stamp
    assert verify.verify_log(tmp_path / "l.jsonl").ok


def test_stamp_can_change_during_a_run(tmp_path):
    w = writer.AuditWriter(tmp_path / "l.jsonl", run_id="x", stamp={"change_id": None})
    w.append({"type": "a"})
    w.stamp["change_id"] = "CR-9"
    w.append({"type": "b"})
    w.close()
    assert [r.get("change_id") for r in records(tmp_path / "l.jsonl")][:2] == [None, "CR-9"]


def test_resume_continues_the_chain_and_refuses_broken_logs(tmp_path):
    path = tmp_path / "l.jsonl"
    priv = tmp_path / "k.pem"
    keys.write_keypair(str(priv))
    w = writer.AuditWriter(path, run_id="x", signing_key=str(priv))
    w.append({"type": "task"})
    w.close()
    w = writer.AuditWriter.resume(path, public_keys=[str(priv) + ".pub"], signing_key=str(priv))
    w.append({"type": "approval", "by": "it-manager"})
    w.close()
    res = verify.verify_log(path, public_keys=[str(priv) + ".pub"])
    assert res.ok and res.records == 4 and res.signed_checkpoints == 2
    # an incomplete log cannot be resumed
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    with pytest.raises(chain.AuditLogError, match="no end-of-run checkpoint"):
        writer.AuditWriter.resume(path)


def test_busy_flag_is_set_only_while_writing(tmp_path):
    w = writer.AuditWriter(tmp_path / "l.jsonl", run_id="x")
    seen = []

    class Probe(dict):
        def items(self):
            seen.append(w.busy)
            return super().items()

    w.append({"type": "probe", "data": Probe(a=1)})
    assert seen and all(seen) and not w.busy
    w.close()


WRITER_SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[2])
from ansible_collections.itsop.change.plugins.module_utils._audit.writer import AuditWriter
w = AuditWriter(sys.argv[1], run_id="killed", fsync="never", checkpoint_every=0)
big = "x" * (48 * 1024 * 1024)
w.append({"type": "run_start"})
print("ready", flush=True)
while True:
    w.append({"type": "result", "blob": big})
"""


def _mid_write(path: Path) -> bool:
    """True while a record is being written: the file does not end with a newline."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                return False
            handle.seek(size - 1)
            return handle.read(1) != b"\n"
    except FileNotFoundError:
        return False


def test_kill_9_during_an_append_leaves_verifiable_prefix_and_torn_tail(tmp_path):
    """A real writer process is killed with SIGKILL while the kernel is copying a 48 MiB record
    into the file (observed: the file does not end with a newline). The records before it must
    verify and the cut line must be reported as a torn tail, not as tampering."""
    torn = 0
    for attempt in range(5):
        path = tmp_path / f"kill-{attempt}.jsonl"
        proc = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(path), str(COLLECTIONS)],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 30
            while not _mid_write(path) and time.monotonic() < deadline:
                pass
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        res = verify.verify_log(path)
        assert res.status in ("torn_tail", "incomplete"), res.summary()
        assert res.records >= 1  # the prefix verified record by record
        if res.status == "torn_tail":
            torn += 1
            assert res.first_bad_seq == res.records and "killed mid-write" in res.reason
        path.unlink()
        if torn:
            break
    assert torn, "the writer finished every write before SIGKILL landed in 5 attempts"


def test_extra_var_ids_reads_only_the_two_ids():
    got = audit_events.extra_var_ids([
        "itsop_change_id=CR-42 db_password=hunter2", '{"itsop_stage": 3, "token": "t"}', "@vars.yml", "",
    ])
    assert got == {"itsop_change_id": "CR-42", "itsop_stage": "3"}


def test_callback_declares_itself_as_needing_enablement():
    cb = audit_log.CallbackModule
    assert cb.CALLBACK_NEEDS_ENABLED is True and cb.CALLBACK_TYPE == "notification"
    assert cb.CALLBACK_NAME == "itsop.change.audit_log"
    for method in ("v2_runner_on_async_ok", "v2_runner_on_async_failed", "v2_runner_on_async_poll",
                   "v2_runner_item_on_ok", "v2_runner_item_on_failed", "v2_runner_item_on_skipped",
                   "v2_playbook_on_handler_task_start", "v2_runner_on_unreachable", "v2_playbook_on_stats"):
        assert method in cb.__dict__, method
