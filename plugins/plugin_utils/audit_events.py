# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the ``itsop.change.audit_log`` callback records of a run: command line and task results.

The callback turns each playbook event into a record and hands it to the writer; the parts of a
record that come from data (the command line's summary, the change id and stage given with
``-e``, the recorded part of a task result, redacted) are built here. Controller side only (a
``plugin_utils``: it parses ``-e`` with ansible-core's ``parse_kv``).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json

from ansible.module_utils.common.text.converters import to_text

#: include_vars actions: a hidden (vaulted) include_vars result makes new host variables
INCLUDE_VARS = frozenset(("include_vars", "ansible.builtin.include_vars", "ansible.legacy.include_vars"))
#: result keys kept when record_results is false
SUMMARY_KEYS = ("msg", "rc", "failed_when_result", "attempts", "retries", "ansible_job_id",
                "finished", "started", "censored", "skip_reason", "false_condition")
#: command line arguments recorded in run_start (never extra_vars)
CLI_KEYS = ("check", "diff", "verbosity", "forks", "limit", "tags", "skip_tags", "become",
            "become_user", "remote_user", "inventory", "connection", "start_at_task", "step")


def cli_summary(cli):
    """The recorded command line arguments (see CLI_KEYS) of ``context.CLIARGS``."""
    out = {}
    if not cli:
        return out
    for key in CLI_KEYS:
        value = cli.get(key)
        if value not in (None, (), [], ""):
            out[key] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def extra_var_ids(raw_list):
    """Read only itsop_change_id / itsop_stage from raw -e arguments (k=v or JSON)."""
    found = {}
    for raw in raw_list or ():
        text = to_text(raw).strip()
        if not text or text.startswith("@"):
            continue
        data = None
        if text[0] in "{[":
            try:
                data = json.loads(text)
            except ValueError:
                data = None
        else:
            try:
                from ansible.parsing.splitter import parse_kv
                data = parse_kv(text)
            except Exception:  # noqa: BLE001 - anything unparsable is simply not an id source
                data = None
        if isinstance(data, dict):
            for key in ("itsop_change_id", "itsop_stage"):
                if data.get(key) not in (None, ""):
                    found[key] = to_text(data[key])
    return found


def result_fields(data, status, item, task_no_log, redactor, record_results):
    """The recorded part of a task result ``data`` (a mapping, never modified).

    ``changed`` always; ``no_log`` alone for a hidden result; else the loop label (never the full
    item, which may hold secrets the label hides), the diff of a change and the redacted result
    (all of it, or only SUMMARY_KEYS when ``record_results`` is false; a loop's ``results`` list
    is counted, as every item has its own record).
    """
    rec = {"changed": bool(data.get("changed", False))}
    no_log = bool(task_no_log) or bool(data.get("_ansible_no_log")) or "censored" in data
    delegated = data.get("_ansible_delegated_vars")
    if isinstance(delegated, dict) and delegated.get("ansible_host"):
        rec["delegated_to"] = to_text(delegated.get("ansible_host"))
    if item and status != "retry":
        rec["loop"] = True
    if no_log:
        rec["no_log"] = True
        return rec
    if item and status != "retry":
        label = data.get("_ansible_item_label", data.get("item"))
        rec["item"] = redactor.redact(label)
    if rec["changed"] and "diff" in data:
        rec["diff"] = redactor.redact(data["diff"])
    if record_results:
        body = {}
        for name, value in data.items():
            if name == "diff" or (item and name == "item"):
                continue
            if name == "results" and isinstance(value, list):
                body["results_count"] = len(value)
                continue
            body[name] = value
        rec["result"] = redactor.redact(body)
    else:
        rec["result"] = redactor.redact(dict((k, data[k]) for k in SUMMARY_KEYS if k in data))
    return rec
