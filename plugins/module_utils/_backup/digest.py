# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SHA-256 of files, and the re-hash of a snapshot's files against its record."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib
import os

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import CHUNK, SMALL_FILE
from ansible_collections.itsop.change.plugins.module_utils._backup.store import open_store_file


def sha256_file(path, size=None, follow=True):
    """SHA-256 of a file; ``size`` when the caller knows it already, ``follow=False`` refuses a symlink."""
    fd = os.open(path, os.O_RDONLY if follow else os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
    try:
        return sha256_fd(fd, os.fstat(fd).st_size if size is None else size)
    finally:
        os.close(fd)


def sha256_fd(fd, size):
    """SHA-256 of what is left to read from ``fd``; ``size`` is the expected size (a hint only)."""
    digest = hashlib.sha256()
    if size <= SMALL_FILE:
        data = os.read(fd, size + 1)
        while data:
            digest.update(data)
            data = os.read(fd, CHUNK)
        return digest.hexdigest()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        count = os.readv(fd, [buf])
        if not count:
            break
        digest.update(view[:count])
    return digest.hexdigest()


def check_files(snapshot_dir, record):
    """Re-hash archive, manifest and package state against the record."""
    results = {}
    for key in ('archive', 'manifest', 'packages'):
        entry = record.get(key)
        if not entry:
            continue
        path = os.path.join(snapshot_dir, entry['name'])
        if not os.path.lexists(path):
            raise BackupError('%s file %s is missing' % (key, path))
        fd, st = open_store_file(path, key)
        try:
            actual = sha256_fd(fd, st.st_size)
        finally:
            os.close(fd)
        results[key] = {'path': path, 'expected_sha256': entry.get('sha256'), 'sha256': actual,
                        'ok': actual == entry.get('sha256')}
    return results
