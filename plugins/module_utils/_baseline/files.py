# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Files of the snapshot: setuid/setgid and world-writable files under given roots, and the watched files."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import grp
import hashlib
import os
import pwd
import stat


def _name(getter, ident):
    try:
        return getter(ident)[0]
    except KeyError:
        return str(ident)


def _walk(roots, excludes):
    """Yield (path, lstat) for files and directories under roots, staying on each root's device."""
    seen = set()
    for root in roots:
        try:
            root_st = os.lstat(root)
        except OSError:
            continue
        if not stat.S_ISDIR(root_st.st_mode):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            if any(dirpath == ex or dirpath.startswith(ex.rstrip('/') + '/') for ex in excludes):
                dirnames[:] = []
                continue
            keep = []
            for name in dirnames:
                full = os.path.join(dirpath, name)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if st.st_dev == root_st.st_dev and not stat.S_ISLNK(st.st_mode):
                    keep.append(name)
                    if full not in seen:
                        seen.add(full)
                        yield full, st
            dirnames[:] = keep
            for name in filenames:
                full = os.path.join(dirpath, name)
                if full in seen:
                    continue
                seen.add(full)
                try:
                    yield full, os.lstat(full)
                except OSError:
                    continue


def _entry(path, st):
    return dict(path=path, mode='%04o' % stat.S_IMODE(st.st_mode), owner=_name(pwd.getpwuid, st.st_uid),
                group=_name(grp.getgrgid, st.st_gid))


def setuid_files(roots, excludes):
    out = []
    for path, st in _walk(roots, excludes):
        if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            entry = _entry(path, st)
            entry.update(setuid=bool(st.st_mode & stat.S_ISUID), setgid=bool(st.st_mode & stat.S_ISGID))
            out.append(entry)
    return sorted(out, key=lambda e: e['path'])


def world_writable(roots, excludes):
    out = []
    for path, st in _walk(roots, excludes):
        if stat.S_ISLNK(st.st_mode) or not st.st_mode & stat.S_IWOTH:
            continue
        if stat.S_ISDIR(st.st_mode):
            if st.st_mode & stat.S_ISVTX:
                continue
            kind = 'directory'
        elif stat.S_ISREG(st.st_mode):
            kind = 'file'
        else:
            continue
        entry = _entry(path, st)
        entry['type'] = kind
        out.append(entry)
    return sorted(out, key=lambda e: e['path'])


def file_info(path):
    try:
        st = os.stat(path)
    except OSError:
        return dict(exists=False)
    info = _entry(path, st)
    info.pop('path')
    info['exists'] = True
    info['type'] = 'directory' if stat.S_ISDIR(st.st_mode) else 'file'
    info['sha256'] = None
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256()
        with open(path, 'rb') as fh:
            for chunk in iter(lambda: fh.read(1024 * 1024), b''):
                digest.update(chunk)
        info['sha256'] = digest.hexdigest()
    return info
