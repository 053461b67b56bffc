# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: audit_log
type: notification
short_description: Tamper-evident, hash-chained audit log of every playbook event
version_added: 0.1.0
author:
  - itsop.change engineers (@itsop)
description:
  - Writes the SOP's C(Log Aktivitas Sistem IT) (IT system activity log) - one append-only JSON
    Lines file per run, created with mode 0600 in a 0700 directory.
  - Records the playbook, play, task and handler starts, every runner result (ok, failed, skipped,
    unreachable, async, per loop item, retries), the final stats and an interruption by SIGINT or
    SIGTERM. Each record carries a sequence number, a UTC ISO-8601 time, the run id, change id
    and stage, the operator, the controller and managed host, the play and task names and uuids,
    the action, status, changed flag, duration and, for changed tasks in diff mode, the diff.
  - Records are hash-chained (SHA-256 over canonical JSON, domain-separated). Checkpoint records
    (every O(checkpoint_every) records and at the end of the run) hold the record count and head
    hash and are signed with Ed25519 when O(signing_key) is set.
  - Nothing from C(no_log) tasks is recorded besides status and changed flag. Values under keys
    matching O(redact_patterns) are replaced by C(VALUE_REDACTED); C(extra_vars) and
    C(ansible_env) are never recorded. Vaulted values never appear decrypted in a record. The callback learns
    every vaulted value the play can use (inventory and play variables, vars_files, extra vars,
    task and role variables, vaulted values in results such as C(include_vars)) and replaces it
    by C(VALUE_REDACTED) wherever it occurs, also inside longer text (module arguments, set_fact
    results, loop items, command output), nested or in loops. Vaulted values shorter than 4
    characters are not searched for; a value transformed before use (e.g. C(b64encode)) is not
    recognised.
  - Verify a log offline with C(sopctl audit verify PATH --public-key KEY.pub). The record format
    is documented in C(docs/audit-log.md) of the collection.
  - Without O(log_dir) the callback disables itself with a warning.
requirements:
  - Enable the callback with C(callbacks_enabled = itsop.change.audit_log) in C(ansible.cfg) or
    E(ANSIBLE_CALLBACKS_ENABLED).
  - The Python library C(cryptography) (an ansible-core dependency) for signed checkpoints.
options:
  log_dir:
    description:
      - Directory for the audit logs; created with mode 0700 when missing.
      - Each run writes C(<UTC yyyymmddThhmmssZ>-<run id>.jsonl) in it.
    type: path
    env:
      - name: ITSOP_AUDIT_DIR
    ini:
      - section: callback_audit_log
        key: log_dir
  signing_key:
    description:
      - Path of a PEM (PKCS#8) Ed25519 private key used to sign checkpoints, for example made by
        C(sopctl audit keygen). It must not be readable by group or others.
      - Without it checkpoints are unsigned and the log is only hash-chained.
    type: path
    env:
      - name: ITSOP_AUDIT_SIGNING_KEY
    ini:
      - section: callback_audit_log
        key: signing_key
  fsync:
    description:
      - When to force records to stable storage.
      - V(always) after every record, V(checkpoint) at every checkpoint and at the end of the run,
        V(never) leaves it to the operating system.
    type: str
    choices: [always, checkpoint, never]
    default: checkpoint
    env:
      - name: ITSOP_AUDIT_FSYNC
    ini:
      - section: callback_audit_log
        key: fsync
  checkpoint_every:
    description:
      - Write a checkpoint after this many records (besides the final one). V(0) writes only the
        final checkpoint.
    type: int
    default: 1000
    env:
      - name: ITSOP_AUDIT_CHECKPOINT_EVERY
    ini:
      - section: callback_audit_log
        key: checkpoint_every
  redact_patterns:
    description:
      - Case-insensitive regular expressions searched in mapping keys of results; the value under a
        matching key is replaced by C(VALUE_REDACTED).
    type: list
    elements: str
    default: [passw, passphrase, pwd, secret, token, key, private, credential, vault, authorization,
              cookie, signature]
    env:
      - name: ITSOP_AUDIT_REDACT_PATTERNS
    ini:
      - section: callback_audit_log
        key: redact_patterns
  record_results:
    description:
      - Record the (redacted) module result of every task. With V(false) only status, changed,
        message and return code are kept.
    type: bool
    default: true
    env:
      - name: ITSOP_AUDIT_RECORD_RESULTS
    ini:
      - section: callback_audit_log
        key: record_results
  run_id:
    description:
      - Run id stamped on every record and used in the file name. A random one by default; the
        controller C(sopctl) passes its own.
    type: str
    env:
      - name: ITSOP_RUN_ID
  change_id:
    description:
      - Change request id stamped on every record. The extra var C(itsop_change_id) overrides it.
    type: str
    env:
      - name: ITSOP_CHANGE_ID
  stage:
    description:
      - SOP stage stamped on every record. The extra var C(itsop_stage) overrides it.
    type: str
    env:
      - name: ITSOP_STAGE
  operator:
    description:
      - Declared operator recorded next to the operating system user.
    type: str
    env:
      - name: ITSOP_OPERATOR
notes:
  - The extra vars C(itsop_change_id) and C(itsop_stage) are read; no other extra var is recorded.
  - A log whose last record is not a final checkpoint is reported by the verifier as incomplete
    (for example after C(kill -9)); a last line cut mid-write is reported as a torn tail.
seealso:
  - name: Audit log guide
    description: Enabling, verifying, showing and querying audit logs; the record format.
    link: https://example.invalid/itsop/change/docs/audit-log.md
"""

EXAMPLES = r"""
# ansible.cfg
# [defaults]
# callbacks_enabled = itsop.change.audit_log
#
# [callback_audit_log]
# log_dir = /var/log/itsop/audit
# signing_key = /etc/itsop/audit-signing.pem
# fsync = checkpoint

# or in the environment:
# ANSIBLE_CALLBACKS_ENABLED=itsop.change.audit_log ITSOP_AUDIT_DIR=/var/log/itsop/audit \
#   ITSOP_CHANGE_ID=CR-2025-001 ITSOP_STAGE=3 ansible-playbook site.yml
"""

import atexit  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

from ansible import context  # noqa: E402
from ansible.module_utils.common.text.converters import to_text  # noqa: E402
from ansible.plugins.callback import CallbackBase  # noqa: E402
from ansible.release import __version__ as ansible_version  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._audit.chain import AuditLogError  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._audit.redact import Redactor  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._audit.writer import (  # noqa: E402
    AuditWriter,
    controller_host,
    default_operator,
    ensure_log_dir,
)
from ansible_collections.itsop.change.plugins.plugin_utils.audit_events import (  # noqa: E402
    INCLUDE_VARS,
    cli_summary,
    extra_var_ids,
    result_fields,
)
from ansible_collections.itsop.change.plugins.plugin_utils.audit_vault import (  # noqa: E402
    SCAN_SKIP,
    collect_vaulted,
    vault_plaintext,
)


class CallbackModule(CallbackBase):
    """Write a hash-chained audit record for every playbook event."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "itsop.change.audit_log"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super(CallbackModule, self).__init__(display=display)
        self.writer = None
        self.redactor = None
        self.record_results = True
        self._pid = os.getpid()
        self._starts = {}
        self._play = None
        self._play_info_cache = None
        self._task_cache = {}
        self._roles_scanned = set()
        self._stamp = {}
        self._options_ready = False
        self._prev_handlers = {}
        self._pending_signal = None
        self._writer_args = None
        self.log_path = None

    # ------------------------------------------------------------------ configuration
    def set_options(self, task_keys=None, var_options=None, direct=None):
        super(CallbackModule, self).set_options(task_keys=task_keys, var_options=var_options,
                                                direct=direct)
        log_dir = self.get_option("log_dir")
        if not log_dir:
            self._display.warning("itsop.change.audit_log: no log_dir configured (set ITSOP_AUDIT_DIR or "
                                  "[callback_audit_log] log_dir); audit logging is DISABLED for this run")
            self.disabled = True
            return
        self.redactor = Redactor(patterns=self.get_option("redact_patterns"), secret_probe=vault_plaintext)
        self.record_results = self.get_option("record_results")
        operator = default_operator()
        if self.get_option("operator"):
            operator["declared"] = self.get_option("operator")
        cli = context.CLIARGS
        ids = extra_var_ids(cli.get("extra_vars", ()) if cli else ())
        self._stamp = {
            "change_id": ids.get("itsop_change_id") or self.get_option("change_id"),
            "stage": ids.get("itsop_stage") or self.get_option("stage"),
            "operator": operator,
            "controller": controller_host(),
        }
        try:
            warning = ensure_log_dir(log_dir)
            if warning:
                self._display.warning("itsop.change.audit_log: " + warning)
            self.writer = AuditWriter.create_in_dir(
                log_dir, run_id=self.get_option("run_id"), signing_key=self.get_option("signing_key"),
                fsync=self.get_option("fsync"), checkpoint_every=self.get_option("checkpoint_every"),
                stamp=self._stamp)
        except (AuditLogError, OSError) as exc:
            self._display.warning("itsop.change.audit_log: cannot open the audit log in %s: %s; audit "
                                  "logging is DISABLED for this run" % (log_dir, to_text(exc)))
            self.disabled = True
            return
        self.log_path = self.writer.path
        self._display.vv("itsop.change.audit_log: writing %s" % self.log_path)
        self._emit({"type": "run_start", "ansible_version": ansible_version,
                    "cli": cli_summary(cli), "pid": self._pid,
                    "signed": self.writer.key_id is not None, "key_id": self.writer.key_id,
                    "redaction": {"patterns": list(self.redactor.patterns),
                                  "vaulted_values": "replaced wherever they occur",
                                  "not_recorded": ["extra_vars", "ansible_env", "no_log results"]}})
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._prev_handlers[sig] = signal.signal(sig, self._on_signal)
            except (ValueError, OSError):  # not in the main thread
                pass
        atexit.register(self._at_exit)

    # ------------------------------------------------------------------ writing
    def _emit(self, record):
        if self.writer is None or os.getpid() != self._pid:
            return None
        try:
            return self.writer.append(record)
        except (AuditLogError, OSError) as exc:
            self._display.error("itsop.change.audit_log: writing %s failed: %s; audit logging stops and "
                                "the log will verify as incomplete" % (self.log_path, to_text(exc)))
            self.writer = None
            self.disabled = True
            return None
        finally:
            if self._pending_signal is not None and self.writer is not None and not self.writer.busy:
                signum, frame = self._pending_signal
                self._pending_signal = None
                self._on_signal(signum, frame)

    def _finish(self, reason):
        if self.writer is None or os.getpid() != self._pid:
            return
        try:
            if not self.writer.ended:
                self.writer.checkpoint(final=True, reason=reason)
        except (AuditLogError, OSError) as exc:
            self._display.error("itsop.change.audit_log: final checkpoint failed: %s" % to_text(exc))

    def _at_exit(self):
        if self.writer is None or os.getpid() != self._pid:
            return
        try:
            self.writer.close(reason="exit")
        except (AuditLogError, OSError):
            pass
        self.writer = None

    def _on_signal(self, signum, frame):
        if os.getpid() == self._pid and self.writer is not None:
            if self.writer.busy:
                # a record is half built: finish it first, then come back (see _emit)
                self._pending_signal = (signum, frame)
                return
            try:
                name = signal.Signals(signum).name
            except ValueError:
                name = str(signum)
            try:
                self.writer.append({"type": "interrupted", "signal": name})
                self.writer.checkpoint(final=True, reason="interrupted")  # fsynced unless fsync=never
            except (AuditLogError, OSError):
                pass
        previous = self._prev_handlers.get(signum, signal.SIG_DFL)
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_IGN:
            return
        else:
            os.kill(os.getpid(), signum)

    # ------------------------------------------------------------------ helpers
    def _scrub(self, text):
        return self.redactor.scrub(text) if self.redactor is not None else text

    def _learn_play_secrets(self, play):
        """Teach the redactor every vaulted value the play's hosts can use (group/host vars,
        play vars and vars_files, extra vars), before any result of the play is recorded."""
        if self.redactor is None:
            return
        try:
            manager = play.get_variable_manager()
            inventory = getattr(manager, "_inventory", None)
            hosts = inventory.get_hosts(play.hosts) if inventory is not None else []
        except Exception as exc:  # noqa: BLE001 - a broken pattern fails the play itself
            self._display.vv("itsop.change.audit_log: cannot list the play's hosts: %s" % to_text(exc))
            return
        seen = set()
        for host in hosts or [None]:
            self._learn_host_secrets(play, host, seen)

    def _learn_host_secrets(self, play, host, seen=None):
        try:
            variables = play.get_variable_manager().get_vars(play=play, host=host, include_hostvars=False)
        except Exception as exc:  # noqa: BLE001 - the engine reports broken variables itself
            self._display.vv("itsop.change.audit_log: cannot read variables: %s" % to_text(exc))
            return
        for name, value in variables.items():
            if name not in SCAN_SKIP:
                collect_vaulted(value, self.redactor, _seen=seen)

    def _learn_task_secrets(self, task):
        """Vaulted values in task vars and the task's role (vars, defaults, parameters)."""
        if self.redactor is None:
            return
        sources = [getattr(task, "vars", None)]
        role = getattr(task, "_role", None)
        if role is not None and id(role) not in self._roles_scanned:
            self._roles_scanned.add(id(role))
            for attr in ("_role_vars", "_default_vars", "_role_params"):
                sources.append(getattr(role, attr, None))
        for source in sources:
            if source:
                collect_vaulted(source, self.redactor)

    def _task_info(self, task):
        uuid = task._uuid
        static = self._task_cache.get(uuid)
        if static is None:
            try:
                path = task.get_path()
            except Exception:  # noqa: BLE001 - the path is informative only
                path = None
            static = (to_text(task.action), to_text(path) if path else None)
            self._task_cache[uuid] = static
        info = {"name": self._scrub(to_text(task.get_name())), "uuid": uuid, "action": static[0]}
        if static[1]:
            info["path"] = static[1]
        return info

    def _play_info(self):
        return self._play_info_cache

    def _result_record(self, result, status, item=False, final=True):
        task = result.task
        host = result.host.get_name()
        key = (host, task._uuid)
        now = time.time()
        rec = {"type": "result", "status": status, "host": host, "task": self._task_info(task),
               "play": self._play_info()}
        start = self._starts.get(key)
        if start is not None:
            rec["duration"] = round(now - start, 6)
        if final:
            self._starts.pop(key, None)
        rec.update(result_fields(result.result, status, item, task.no_log, self.redactor, self.record_results))
        if rec.get("no_log") and task.action in INCLUDE_VARS and self._play is not None \
                and self.redactor is not None:
            # Ansible hides the result of a vaulted include_vars; its values are now host
            # variables, which later tasks may print: learn them before any such record
            self._learn_host_secrets(self._play, result.host)
        return rec

    # ------------------------------------------------------------------ playbook events
    def v2_playbook_on_start(self, playbook):
        self._emit({"type": "playbook_start",
                    "playbook": to_text(getattr(playbook, "_file_name", None) or "")})

    def v2_playbook_on_play_start(self, play):
        self._play = play
        self._learn_play_secrets(play)
        self._play_info_cache = {"name": self._scrub(to_text(play.get_name())), "uuid": play._uuid}
        self._task_cache = {}
        try:
            extra = play.get_variable_manager().extra_vars
        except Exception:  # noqa: BLE001 - no variable manager: keep the ids from the command line
            extra = {}
        if self.writer is not None:
            for var, field in (("itsop_change_id", "change_id"), ("itsop_stage", "stage")):
                value = extra.get(var) if isinstance(extra, dict) else None
                if value not in (None, ""):
                    self.writer.stamp[field] = to_text(value)
        self._emit({"type": "play_start", "play": self._play_info(),
                    "hosts": self.redactor.redact(play.hosts) if self.redactor else None,
                    "check_mode": bool(play.check_mode) if play.check_mode is not None else None})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._learn_task_secrets(task)
        self._emit({"type": "task_start", "task": self._task_info(task), "play": self._play_info()})

    def v2_playbook_on_handler_task_start(self, task):
        self._learn_task_secrets(task)
        self._emit({"type": "handler_task_start", "task": self._task_info(task),
                    "play": self._play_info()})

    def v2_playbook_on_no_hosts_matched(self):
        self._emit({"type": "no_hosts_matched", "play": self._play_info()})

    def v2_playbook_on_no_hosts_remaining(self):
        self._emit({"type": "no_hosts_remaining", "play": self._play_info()})

    def v2_playbook_on_stats(self, stats):
        hosts = {}
        for host in sorted(stats.processed.keys()):
            hosts[to_text(host)] = stats.summarize(host)
        self._emit({"type": "stats", "hosts": hosts})
        self._finish("end of playbook")

    # ------------------------------------------------------------------ runner events
    def v2_runner_on_start(self, host, task):
        self._starts[(host.get_name(), task._uuid)] = time.time()

    def v2_runner_on_ok(self, result):
        self._emit(self._result_record(result, "ok"))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        rec = self._result_record(result, "failed")
        rec["ignore_errors"] = bool(ignore_errors)
        self._emit(rec)

    def v2_runner_on_skipped(self, result):
        self._emit(self._result_record(result, "skipped"))

    def v2_runner_on_unreachable(self, result):
        self._emit(self._result_record(result, "unreachable"))

    def v2_runner_on_async_poll(self, result):
        self._emit(self._result_record(result, "async_poll", final=False))

    def v2_runner_on_async_ok(self, result):
        self._emit(self._result_record(result, "async_ok", final=False))

    def v2_runner_on_async_failed(self, result):
        self._emit(self._result_record(result, "async_failed", final=False))

    def v2_runner_item_on_ok(self, result):
        self._emit(self._result_record(result, "item_ok", item=True, final=False))

    def v2_runner_item_on_failed(self, result):
        self._emit(self._result_record(result, "item_failed", item=True, final=False))

    def v2_runner_item_on_skipped(self, result):
        self._emit(self._result_record(result, "item_skipped", item=True, final=False))

    def v2_runner_retry(self, result):
        self._emit(self._result_record(result, "retry", item=True, final=False))
