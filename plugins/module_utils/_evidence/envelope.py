# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one envelope of an evidence document, and the one verdict rule.

Every evidence document the collection writes carries, at its top level::

    kind       one of KINDS (its JSON Schema is schemas/evidence/<kind>.v1.json)
    version    VERSION
    change_id  the change it belongs to
    host       the host it is about, or null for a document about the whole change
    passed     true exactly when ``reasons`` is empty
    reasons    why it did not pass (list of strings), empty when it passed

The producer says *why* something failed (``reasons``); whether that means *passed* is decided
here, once: ``passed = not reasons``. Producers write documents through :func:`wrap` (the roles
through the ``itsop.change.evidence`` filter); the controller reads them through
``sopctl.evidence`` (:func:`problems` is the check both sides share).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

VERSION = 1

#: the kinds of evidence document, each with a schema under schemas/evidence/
KINDS = (
    "plan",               # stage1/plan.json
    "backup",             # stage2/backup/<host>/checklist.json
    "artifacts",          # stage2/artifacts/verification.json
    "baseline",           # stage2/baseline/<host>.json
    "staging",            # stage2/staging.json
    "execution",          # stage3/<host>.json, stage2/staging/<host>.json
    "execution_summary",  # stage3/summary.json
    "rollback",           # rollback/<host>.json
    "functional_tests",   # stage4/<host>.json, stage2/validate/<host>.json
    "security_tests",     # stage4/security.json
    "monitoring",         # stage5/monitoring.json
    "incidents",          # stage5/incidents.json
)

ENVELOPE_KEYS = ("kind", "version", "change_id", "host", "passed", "reasons")

#: verdict fields of the documents before the envelope; a body must not carry them any more
LEGACY_VERDICT_KEYS = ("verdict", "result", "complete", "healthy")


class EvidenceError(ValueError):
    """A document (or a request to write one) that breaks the contract."""


def _reason_list(reasons):
    if reasons is None:
        return []
    if isinstance(reasons, (str, bytes)) or not isinstance(reasons, (list, tuple)):
        raise EvidenceError("reasons must be a list of strings, got %s" % type(reasons).__name__)
    out = []
    for i, reason in enumerate(reasons):
        if not isinstance(reason, str) or not reason.strip():
            raise EvidenceError("reasons[%d] must be a non-empty string, got %r" % (i, reason))
        out.append(reason.strip())
    return out


def wrap(body, kind, change_id, host=None, reasons=None):
    """``body`` with the envelope on top; ``passed`` follows from ``reasons``.

    Refuses an unknown kind, a missing change id, and a body that already carries an envelope key
    or a legacy verdict field (two fields that could disagree are how a verdict is read wrongly).
    """
    if not isinstance(body, dict):
        raise EvidenceError("the evidence body must be a mapping, got %s" % type(body).__name__)
    if kind not in KINDS:
        raise EvidenceError("unknown evidence kind %r (one of: %s)" % (kind, ", ".join(KINDS)))
    if not isinstance(change_id, str) or not change_id:
        raise EvidenceError("evidence of kind %s needs a change_id, got %r" % (kind, change_id))
    if host is not None and (not isinstance(host, str) or not host):
        raise EvidenceError("host must be a host name or null, got %r" % (host,))
    clash = sorted(k for k in body if k in ENVELOPE_KEYS or k in LEGACY_VERDICT_KEYS)
    if clash:
        raise EvidenceError("the %s evidence body carries envelope or verdict field(s) %s; "
                            "give the failures as reasons instead" % (kind, ", ".join(clash)))
    reasons = _reason_list(reasons)
    doc = dict(body)
    doc.update(kind=kind, version=VERSION, change_id=change_id, host=host,
               passed=not reasons, reasons=reasons)
    return doc


def problems(doc, kind=None, change_id=None, host=None):
    """What is wrong with ``doc``'s envelope (empty list: it keeps the contract).

    ``kind``, ``change_id`` and ``host``, when given, must be what the document says: a document
    of another change or host copied into place does not count.
    """
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    found = []
    missing = [k for k in ENVELOPE_KEYS if k not in doc]
    if missing:
        return ["no evidence envelope (missing %s)" % ", ".join(missing)]
    if doc["version"] != VERSION:
        found.append("envelope version %r is not %d" % (doc["version"], VERSION))
    if doc["kind"] not in KINDS:
        found.append("unknown kind %r" % (doc["kind"],))
    elif kind is not None and doc["kind"] != kind:
        found.append("kind is %r, expected %r" % (doc["kind"], kind))
    if change_id is not None and doc["change_id"] != change_id:
        found.append("change_id is %r, expected %r" % (doc["change_id"], change_id))
    if host is not None and doc["host"] != host:
        found.append("host is %r, expected %r" % (doc["host"], host))
    if not isinstance(doc["passed"], bool):
        found.append("passed is %r, not a boolean" % (doc["passed"],))
    try:
        reasons = _reason_list(doc["reasons"])
    except EvidenceError as exc:
        found.append(str(exc))
    else:
        if isinstance(doc["passed"], bool) and doc["passed"] == bool(reasons):
            found.append("passed is %s but reasons %s" % (str(doc["passed"]).lower(),
                                                          "are given" if reasons else "are empty"))
    return found
