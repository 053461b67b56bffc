# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.itsop.change.plugins.module_utils._evidence.envelope import EvidenceError, wrap

DOCUMENTATION = r"""
name: evidence
short_description: Put the evidence envelope on a document
version_added: 1.0.0
author: itsop.change engineers
description:
  - Returns the input mapping with the evidence envelope on its top level - C(kind), C(version),
    C(change_id), C(host), C(passed) and C(reasons) - the one contract every evidence document of
    the collection keeps (JSON Schemas under C(schemas/evidence/)).
  - C(passed) is not an input - it is V(true) exactly when O(reasons) is empty. Producers say why
    something failed; the verdict rule lives in one place.
  - Fails with a clear error for an unknown kind, a missing change id, non-string reasons, or an
    input that already carries an envelope key or an older verdict field (C(verdict), C(result),
    C(complete), C(healthy)).
positional: kind
options:
  _input:
    description: The document's body (a mapping).
    type: dict
    required: true
  kind:
    description:
      - The kind of evidence, one of V(plan), V(backup), V(artifacts), V(baseline), V(staging),
        V(execution), V(execution_summary), V(rollback), V(functional_tests), V(security_tests),
        V(monitoring), V(incidents).
    type: str
    required: true
  change_id:
    description: The change the document belongs to.
    type: str
    required: true
  host:
    description: The host the document is about; omit for a document about the whole change.
    type: str
  reasons:
    description: Why it did not pass, one string each; empty when it passed.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Write the staging verdict
  ansible.builtin.copy:
    dest: "{{ evidence_dir }}/stage2/staging.json"
    content: "{{ body | itsop.change.evidence('staging', change_id=change.id, reasons=failures) | to_nice_json }}\n"
    mode: "0600"
"""

RETURN = r"""
_value:
  description: The body with C(kind), C(version), C(change_id), C(host), C(passed) and C(reasons) added.
  type: dict
"""


def evidence(body, kind, change_id=None, host=None, reasons=None):
    try:
        return wrap(dict(body) if hasattr(body, "items") else body, kind, change_id, host=host,
                    reasons=list(reasons) if isinstance(reasons, (list, tuple)) else reasons)
    except EvidenceError as exc:
        raise AnsibleFilterError("itsop.change.evidence: %s" % exc) from None


class FilterModule(object):
    def filters(self):
        return {"evidence": evidence}
