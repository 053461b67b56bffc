# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Layout of the backup store: file names, formats, size limits, labels and timestamps."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import datetime

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError


FORMAT_MANIFEST = 'itsop-backup-manifest/1'
FORMAT_RECORD = 'itsop-backup-snapshot/1'
FORMAT_VERIFY = 'itsop-backup-verify/1'
RECORD_NAME = 'snapshot.json'
MANIFEST_NAME = 'manifest.jsonl'
PACKAGES_NAME = 'packages.json'
VERIFY_NAME = 'verify.json'
INCOMPLETE_PREFIX = '.incomplete-'
LIST_NAME = '.names'
ARCHIVE_NAMES = {'zstd': 'archive.tar.zst', 'gzip': 'archive.tar.gz', 'none': 'archive.tar'}
DEFAULT_LEVEL = {'zstd': 3, 'gzip': 6, 'none': 0}
CHUNK = 1024 * 1024
BLOCK = 512
SMALL_FILE = 256 * 1024
DETAIL_LIMIT = 50
#: size limits of the small files read back from the store (the manifest's is the size recorded, or this)
RECORD_LIMIT = 16 * 1024 * 1024
VERIFY_LIMIT = 1024 * 1024
MANIFEST_LIMIT = 4 * 1024 * 1024 * 1024
#: record authentication: HMAC-SHA256 over the canonical JSON of the record, with this domain prefix
RECORD_MAC_DOMAIN = b'itsop-backup-record/1\0'
RECORD_KEY_MIN = 32
SPARSE_EXAMPLES = 1000
LABEL_CHARS = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-')


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(dt):
    return dt.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def validate_label(label):
    if not label or len(label) > 128 or label[0] in '.-' or not set(label) <= LABEL_CHARS:
        raise BackupError("label %r is not valid: use 1-128 characters from A-Z a-z 0-9 . _ -, "
                          "not starting with '.' or '-'" % (label,))
