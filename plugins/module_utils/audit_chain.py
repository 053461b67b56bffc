# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The audit log's names as the controller (``sopctl``) imports them: a re-export, no code.

The audit log is implemented once, in the private package ``_audit``: ``chain`` (format and
hashes), ``redact`` (secrets out of records), ``keys`` (Ed25519 checkpoint keys), ``writer``
(:class:`AuditWriter`) and ``verify`` (:func:`verify_log`). Collection code imports from there;
``controller/sopctl`` (``audit``, ``archive``, ``changelog``, ``report``, ``approvals``) and the
end-to-end audit test read these names as ``audit_chain.<name>``.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

# pylint: disable=unused-import
from ansible_collections.itsop.change.plugins.module_utils._audit.chain import (  # noqa: F401
    RESERVED_FIELDS,
    AuditLogError,
    canonical_json,
)
from ansible_collections.itsop.change.plugins.module_utils._audit.keys import (  # noqa: F401
    load_private_key,
    load_public_key,
    write_keypair,
)
from ansible_collections.itsop.change.plugins.module_utils._audit.redact import REDACTED, Redactor  # noqa: F401
from ansible_collections.itsop.change.plugins.module_utils._audit.verify import (  # noqa: F401
    SIG_NOT_CHECKED,
    SIG_UNSIGNED,
    STATUS_UNREADABLE,
    find_logs,
    iter_records,
    verify_log,
)
from ansible_collections.itsop.change.plugins.module_utils._audit.writer import (  # noqa: F401
    AuditWriter,
    controller_host,
    default_operator,
    ensure_log_dir,
)
