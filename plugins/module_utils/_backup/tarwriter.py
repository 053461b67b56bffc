# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure Python ustar/pax writer (hosts without GNU tar): headers, xattrs and the stream of a walk."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import errno
import grp
import hashlib
import os
import pwd
import stat
import struct
import tarfile

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import BLOCK, CHUNK, SMALL_FILE
from ansible_collections.itsop.change.plugins.module_utils._backup.walk import entry_type


class OwnerNames(object):
    """Cached uid/gid -> name lookups."""

    def __init__(self):
        self.users = {}
        self.groups = {}

    def user(self, uid):
        return self._name(self.users, pwd.getpwuid, uid)

    def group(self, gid):
        return self._name(self.groups, grp.getgrgid, gid)

    @staticmethod
    def _name(cache, lookup, ident):
        """The name of ``ident`` (first field of the pwd/grp entry), '' when there is none; looked up once."""
        name = cache.get(ident)
        if name is None:
            try:
                name = lookup(ident)[0]
            except KeyError:
                name = ''
            cache[ident] = name
        return name


USTAR = struct.Struct('100s8s8s8s12s12s8s1s100s8s32s32s8s8s155s12s')
_MAX7 = 8 ** 7
_MAX11 = 8 ** 11


def tar_header(name, mode, uid, gid, size, mtime, typeflag, linkname=b'', uname='', gname='',
               devmajor=0, devminor=0, xattrs=None):
    """One tar header (ustar when it fits, else a pax extended header plus ustar)."""
    uname_b = uname.encode('utf-8', 'surrogateescape')
    gname_b = gname.encode('utf-8', 'surrogateescape')
    prefix = b''
    short = name
    if len(name) > 100:
        cut = name.rfind(b'/', 0, 156)
        if cut > 0 and len(name) - cut - 1 <= 100:
            prefix, short = name[:cut], name[cut + 1:]
        else:
            short = None
    if (short is None or xattrs or len(linkname) > 100 or len(uname_b) > 32 or len(gname_b) > 32
            or not (0 <= uid < _MAX7 and 0 <= gid < _MAX7 and 0 <= size < _MAX11 and 0 <= mtime < _MAX11
                    and devmajor < _MAX7 and devminor < _MAX7)):
        return _pax_header(name, mode, uid, gid, size, mtime, typeflag, linkname, uname, gname,
                           devmajor, devminor, xattrs)
    buf = USTAR.pack(short, b'%07o' % (mode & 0o7777), b'%07o' % uid, b'%07o' % gid, b'%011o' % size,
                     b'%011o' % mtime, b'        ', typeflag, linkname, b'ustar\x0000', uname_b, gname_b,
                     b'%07o' % devmajor, b'%07o' % devminor, prefix, b'')
    return buf[:148] + b'%06o\x00 ' % sum(buf) + buf[156:]


def _pax_header(name, mode, uid, gid, size, mtime, typeflag, linkname, uname, gname,
                devmajor, devminor, xattrs):
    info = tarfile.TarInfo(name.decode('utf-8', 'surrogateescape'))
    info.mode = mode & 0o7777
    info.uid = uid
    info.gid = gid
    info.size = size
    info.mtime = mtime
    info.type = typeflag
    info.linkname = linkname.decode('utf-8', 'surrogateescape')
    info.uname = uname
    info.gname = gname
    info.devmajor = devmajor
    info.devminor = devminor
    if xattrs:
        for key, value in xattrs.items():
            info.pax_headers['SCHILY.xattr.' + key] = value.decode('utf-8', 'surrogateescape')
    return info.tobuf(tarfile.PAX_FORMAT, 'utf-8', 'surrogateescape')


def read_xattrs(path):
    if not hasattr(os, 'listxattr'):
        return None
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return None
    if not names:
        return None
    result = {}
    for key in names:
        try:
            value = os.getxattr(path, key, follow_symlinks=False)
        except OSError:
            continue
        try:
            value.decode('utf-8')
        except UnicodeDecodeError:
            continue  # tar's pax xattr records carry text; binary values (e.g. ACL blobs) are skipped
        result[key] = value
    return result or None


class PythonTarWriter(object):
    """The writer for hosts without GNU tar: the same POSIX tar stream and manifest, in one pass in Python."""

    lists_names = False

    def stream(self, writer, emit, tree, xattrs, warnings):
        """Walk ``tree``, write its tar stream (end blocks too) to ``writer``, emit its entries; return totals."""
        return _stream(writer, emit, tree.walk(), xattrs, warnings, tree.sparse)

    def close(self):
        return None


def _stream(writer, emit, walked, xattrs, warnings, sparse):
    names = OwnerNames()
    links = {}
    totals = {'entries': 0, 'files': 0, 'dirs': 0, 'symlinks': 0, 'hardlinks': 0, 'special': 0,
              'bytes': 0}
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    for path, st in walked:
        mode = st.st_mode
        kind = entry_type(mode)
        if kind in ('socket', 'unknown'):
            warnings.append('skipped %s %s (tar cannot archive it)' % (kind, path))
            continue
        member = os.fsencode(path.lstrip('/')) or b'.'
        uname = names.user(st.st_uid)
        gname = names.group(st.st_gid)
        mtime = int(st.st_mtime)
        entry = {'path': path, 'type': kind, 'mode': '%04o' % stat.S_IMODE(mode), 'uid': st.st_uid,
                 'gid': st.st_gid, 'owner': uname, 'group': gname, 'mtime': mtime}
        xat = read_xattrs(path) if xattrs else None
        if xat:
            entry['xattrs'] = sorted(xat)
        totals['entries'] += 1
        if kind == 'file' and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = links.get(key)
            if first is not None:
                entry['type'] = 'hardlink'
                entry['link'] = first[0]
                entry['sha256'] = first[1]
                entry['size'] = st.st_size
                totals['hardlinks'] += 1
                writer.write(tar_header(member, mode, st.st_uid, st.st_gid, 0, mtime, tarfile.LNKTYPE,
                                        os.fsencode(first[0].lstrip('/')), uname, gname, xattrs=xat))
                emit(entry)
                continue
        if kind == 'file':
            if st.st_size >= st.st_blocks * 512 + 4096:
                sparse.add(path)
            sha = stream_file(writer, path, st, member, mtime, uname, gname, xat, buf, view, warnings)
            entry['size'] = st.st_size
            entry['sha256'] = sha
            totals['files'] += 1
            totals['bytes'] += st.st_size
            if st.st_nlink > 1:
                links[(st.st_dev, st.st_ino)] = (path, sha)
        elif kind == 'dir':
            totals['dirs'] += 1
            writer.write(tar_header(member.rstrip(b'/') + b'/', mode, st.st_uid, st.st_gid, 0, mtime,
                                    tarfile.DIRTYPE, b'', uname, gname, xattrs=xat))
        elif kind == 'symlink':
            try:
                target = os.readlink(path)
            except OSError as exc:
                raise BackupError('cannot read symlink %s: %s' % (path, exc.strerror or exc), path=path) from None
            entry['target'] = target
            totals['symlinks'] += 1
            writer.write(tar_header(member, mode, st.st_uid, st.st_gid, 0, mtime, tarfile.SYMTYPE,
                                    os.fsencode(target), uname, gname, xattrs=xat))
        else:
            totals['special'] += 1
            flag = {'fifo': tarfile.FIFOTYPE, 'chardev': tarfile.CHRTYPE, 'blockdev': tarfile.BLKTYPE}[kind]
            major = minor = 0
            if kind != 'fifo':
                major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
                entry['rdev'] = [major, minor]
            writer.write(tar_header(member, mode, st.st_uid, st.st_gid, 0, mtime, flag, b'', uname, gname,
                                    major, minor, xattrs=xat))
        emit(entry)
    writer.write(b'\0' * (BLOCK * 2))
    return totals


def stream_file(writer, path, st, member, mtime, uname, gname, xat, buf, view, warnings):
    size = st.st_size
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NOATIME', 0))
    except OSError as exc:
        if exc.errno == errno.EPERM and getattr(os, 'O_NOATIME', 0):
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
            except OSError as exc2:
                raise BackupError('cannot read %s: %s' % (path, exc2.strerror or exc2), path=path) from None
        else:
            raise BackupError('cannot read %s: %s' % (path, exc.strerror or exc), path=path) from None
    digest = hashlib.sha256()
    try:
        writer.write(tar_header(member, st.st_mode, st.st_uid, st.st_gid, size, mtime, tarfile.REGTYPE,
                                b'', uname, gname, xattrs=xat))
        remaining = size
        small = size <= SMALL_FILE
        while remaining > 0:
            try:
                count = os.readv(fd, [view[:min(CHUNK, remaining)]])
            except OSError as exc:
                raise BackupError('cannot read %s: %s' % (path, exc.strerror or exc), path=path) from None
            if count == 0:
                warnings.append('%s shrank by %d bytes while being read; padded with zeros' % (path, remaining))
                zeros = bytes(min(CHUNK, remaining))
                while remaining > 0:
                    part = zeros[:min(len(zeros), remaining)]
                    digest.update(part)
                    writer.write(part)
                    remaining -= len(part)
                break
            chunk = view[:count]
            digest.update(chunk)
            if small:
                writer.write(chunk)
            else:
                writer.write_large(chunk)
            remaining -= count
        if size and os.read(fd, 1):
            warnings.append('%s grew while being read; archived its first %d bytes' % (path, size))
    finally:
        os.close(fd)
    pad = (-size) % BLOCK
    if pad:
        writer.write(b'\0' * pad)
    return digest.hexdigest()
