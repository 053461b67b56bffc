# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one member check of verify and restore over a tar stream (strict reader plus manifest)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.manifest import iter_manifest
from ansible_collections.itsop.change.plugins.module_utils.backup_tarscan import MemberCheck, TarReader, shown


class MemberScan(object):
    """The one member check of verify and restore over a tar stream: ``feed`` chunks, then ``close``.

    A strict tar reader (backup_tarscan.TarReader: only the POSIX subset the snapshot writes, every
    header on which two tar readers could differ refused) hands each member to MemberCheck, which
    matches it with the manifest entry at the same position and applies the rules that keep a restore
    inside its root. ``extra``: a further per-member check (restore: the target on disk).
    """

    def __init__(self, manifest_path, allow_devices=True, extra=None):
        entries = iter_manifest(manifest_path)
        next(entries)
        self.check = MemberCheck(entries, allow_devices=allow_devices, extra=extra)
        self.reader = TarReader(self.check)
        self.feed = self.reader.feed

    @property
    def count(self):
        return self.check.count

    def close(self):
        self.reader.close()
        self.check.finish()


def refused_error(exc):
    """BackupError for an ArchiveRefused (the member name in an escaped form)."""
    details = {}
    if exc.member is not None:
        details['member'] = shown(exc.member)
    return BackupError(exc.msg, **details)
