# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One manifest entry against the filesystem object it describes."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import stat

from ansible_collections.itsop.change.plugins.module_utils._backup.digest import sha256_file
from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.walk import entry_type


def compare_entry(entry, path, check_owner=True, check_mtime=True, hash_content=True, st=None):
    """Differences between a manifest entry and the filesystem object at ``path`` (list of str).

    ``st``: the object's lstat result when the caller has it already.
    """
    if st is None:
        try:
            st = os.lstat(path)
        except OSError:
            return ['missing']
    problems = []
    expected = entry['type']
    actual = entry_type(st.st_mode)
    if expected == 'hardlink':
        expected = 'file'
    if actual != expected:
        return ['type %s, expected %s' % (actual, expected)]
    mode = '%04o' % stat.S_IMODE(st.st_mode)
    if actual != 'symlink' and mode != entry['mode']:
        problems.append('mode %s, expected %s' % (mode, entry['mode']))
    if check_owner and (st.st_uid != entry['uid'] or st.st_gid != entry['gid']):
        problems.append('owner %d:%d, expected %d:%d' % (st.st_uid, st.st_gid, entry['uid'], entry['gid']))
    if actual == 'file':
        if st.st_size != entry['size']:
            problems.append('size %d, expected %d' % (st.st_size, entry['size']))
        elif hash_content:
            try:
                digest = sha256_file(path, st.st_size, follow=False)
            except (OSError, IOError) as exc:
                problems.append('unreadable: %s' % exc)
            else:
                if digest != entry['sha256']:
                    problems.append('content sha256 %s, expected %s' % (digest, entry['sha256']))
        if check_mtime and int(st.st_mtime) != entry['mtime']:
            problems.append('mtime %d, expected %d' % (int(st.st_mtime), entry['mtime']))
    elif actual == 'symlink':
        target = os.readlink(path)
        if target != entry.get('target'):
            problems.append('symlink target %r, expected %r' % (target, entry.get('target')))
    elif actual in ('chardev', 'blockdev'):
        if [os.major(st.st_rdev), os.minor(st.st_rdev)] != entry.get('rdev'):
            problems.append('device number differs')
    return problems


def bad_entry(manifest_path, entry, exc):
    """BackupError for a manifest entry that lacks a field or holds one of the wrong type."""
    return BackupError('manifest %s: the entry for %r is malformed (%s: %s)' % (
        manifest_path, entry.get('path'), exc.__class__.__name__, exc))


def relocate(path, root):
    if root in ('/', ''):
        return path
    return os.path.join(root, path.lstrip('/'))
