# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Retention: remove old snapshots of a label, never the newest verified one, and stale incomplete runs."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import shutil
import time

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import (
    INCOMPLETE_PREFIX, VERIFY_LIMIT, VERIFY_NAME, validate_label)
from ansible_collections.itsop.change.plugins.module_utils._backup.record import snapshot_dirs
from ansible_collections.itsop.change.plugins.module_utils._backup.store import read_store_json


def _verified(snapshot_dir, record):
    path = os.path.join(snapshot_dir, VERIFY_NAME)
    if not os.path.lexists(path):
        return False
    try:
        doc = read_store_json(path, 'verify record', VERIFY_LIMIT)
    except BackupError:
        return False
    return (isinstance(doc, dict) and doc.get('verdict') == 'passed'
            and doc.get('archive_sha256') == record['archive']['sha256'])


def prune_snapshots(dest, label, keep_days=None, keep_copies=None, incomplete_age_hours=24,
                    check_mode=False, now=None):
    """Remove snapshots of ``label`` older than keep_days or beyond keep_copies (never the newest verified)."""
    validate_label(label)
    now = time.time() if now is None else now
    found = snapshot_dirs(dest, label)
    newest_verified = None
    for record, path in reversed(found):
        if _verified(path, record):
            newest_verified = record['snapshot_id']
            break
    removed, kept = [], []
    newest_first = list(reversed(found))
    for index, (record, path) in enumerate(newest_first):
        age_days = (now - record.get('created_epoch', now)) / 86400.0
        too_old = keep_days is not None and age_days > keep_days
        too_many = keep_copies is not None and index >= keep_copies
        sid = record['snapshot_id']
        if (too_old or too_many) and sid != newest_verified:
            removed.append(sid)
            if not check_mode:
                shutil.rmtree(path)
        else:
            kept.append(sid)
    stale = []
    base = os.path.join(dest, label)
    if os.path.isdir(base):
        for name in sorted(os.listdir(base)):
            path = os.path.join(base, name)
            if name.startswith(INCOMPLETE_PREFIX) and os.path.isdir(path):
                if now - os.lstat(path).st_mtime > incomplete_age_hours * 3600:
                    stale.append(name)
                    if not check_mode:
                        shutil.rmtree(path, ignore_errors=True)
    return bool(removed or stale), {'label': label, 'removed': removed, 'kept': kept,
                                    'protected': newest_verified, 'removed_incomplete': stale}
