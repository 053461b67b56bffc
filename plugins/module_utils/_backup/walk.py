# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tree walk: roots, exclusion, depth-first order with bytewise-sorted names, counts and sparse files."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import errno
import fnmatch
import os
import stat

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import BLOCK, SPARSE_EXAMPLES


def normalise_roots(paths):
    """Absolute, normalised, deduplicated roots (a root inside another root is dropped), sorted."""
    roots = []
    for path in paths:
        if not path:
            continue
        roots.append(os.path.normpath(os.path.abspath(path)))
    roots = sorted(set(roots), key=path_key)
    kept = []
    for root in roots:
        if any(root == k or root.startswith(k.rstrip('/') + '/') for k in kept):
            continue
        kept.append(root)
    return kept


def path_key(path):
    """Sort key giving depth-first pre-order with bytewise-sorted names."""
    return [os.fsencode(part) for part in path.split('/') if part]


class Excluder(object):
    """Patterns with a '/' match the absolute path; others match the entry's name."""

    def __init__(self, patterns):
        self.full = [p for p in patterns or () if '/' in p]
        self.name = [p for p in patterns or () if '/' not in p]

    def __call__(self, path, name):
        for pat in self.name:
            if fnmatch.fnmatchcase(name, pat):
                return True
        for pat in self.full:
            if fnmatch.fnmatchcase(path, pat) or fnmatch.fnmatchcase(path, pat.rstrip('/') + '/*'):
                return True
        return False


def walk(roots, excluder, one_file_system=False, onerror=None):
    """Yield ``(path, lstat)`` depth first, names sorted bytewise, roots first."""
    for root in roots:
        try:
            st = os.lstat(root)
        except OSError as exc:
            if onerror:
                onerror(root, exc)
                continue
            raise
        yield root, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(root, st.st_dev, excluder, one_file_system, onerror)


def _walk_dir(top, dev, excluder, one_file_system, onerror):
    try:
        with os.scandir(top) as it:
            entries = sorted(((os.fsencode(e.name), e) for e in it), key=lambda x: x[0])
    except OSError as exc:
        raise BackupError('cannot list directory %s: %s' % (top, exc.strerror or exc), path=top) from None
    for _key, entry in entries:
        path = entry.path
        if excluder(path, entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue  # vanished while walking
            raise BackupError('cannot stat %s: %s' % (path, exc.strerror or exc), path=path) from None
        yield path, st
        if stat.S_ISDIR(st.st_mode) and not (one_file_system and st.st_dev != dev):
            yield from _walk_dir(path, dev, excluder, one_file_system, onerror)


def entry_type(mode):
    if stat.S_ISREG(mode):
        return 'file'
    if stat.S_ISDIR(mode):
        return 'dir'
    if stat.S_ISLNK(mode):
        return 'symlink'
    if stat.S_ISFIFO(mode):
        return 'fifo'
    if stat.S_ISCHR(mode):
        return 'chardev'
    if stat.S_ISBLK(mode):
        return 'blockdev'
    if stat.S_ISSOCK(mode):
        return 'socket'
    return 'unknown'


def scan_size(roots, excluder, one_file_system=False, missing=None):
    """Count entries and bytes (the check-mode report and the free-space estimate)."""
    counts = new_counts()
    for _path, st in walk(roots, excluder, one_file_system, onerror=missing):
        count_entry(counts, entry_type(st.st_mode), st)
    return counts


def new_counts():
    return {'entries': 0, 'files': 0, 'dirs': 0, 'symlinks': 0, 'special': 0, 'bytes': 0}


def count_entry(counts, kind, st):
    """Add one walked entry of ``kind`` (entry_type) to ``counts`` (new_counts)."""
    counts['entries'] += 1
    if kind == 'file':
        counts['files'] += 1
        counts['bytes'] += st.st_size
    elif kind == 'dir':
        counts['dirs'] += 1
    elif kind == 'symlink':
        counts['symlinks'] += 1
    else:
        counts['special'] += 1


def estimate_archive_bytes(counts):
    """Worst case: no compression, one header plus padding per entry, plus manifest lines."""
    return counts['bytes'] + counts['entries'] * (3 * BLOCK + 400) + 1024 * 1024


class Sparse(object):
    """Files with holes seen by the walk: their count and the first SPARSE_EXAMPLES paths."""

    def __init__(self):
        self.count = 0
        self.paths = []

    def add(self, path):
        self.count += 1
        if len(self.paths) < SPARSE_EXAMPLES:
            self.paths.append(path)


class Tree(object):
    """What a snapshot archives: roots, exclusions, one_file_system; ``sparse``: files with holes its walk saw."""

    def __init__(self, roots, excluder, one_file_system=False):
        self.roots = roots
        self.excluder = excluder
        self.one_file_system = one_file_system
        self.sparse = Sparse()

    def walk(self, onerror=None):
        return walk(self.roots, self.excluder, self.one_file_system, onerror)
