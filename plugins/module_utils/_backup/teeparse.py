# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Parser of the tar stream GNU tar writes, fed chunk by chunk on its way to the compressor: one manifest entry
per member."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib
import json
import os

from ansible_collections.itsop.change.plugins.module_utils._backup.digest import sha256_file
from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import BLOCK
from ansible_collections.itsop.change.plugins.module_utils._backup.tarwriter import USTAR


_ZERO_BLOCK = bytes(BLOCK)
_TYPE_OF_FLAG = {b'0': 'file', b'\0': 'file', b'7': 'file', b'1': 'hardlink', b'2': 'symlink',
                 b'3': 'chardev', b'4': 'blockdev', b'5': 'dir', b'6': 'fifo'}


def _octal(field):
    try:
        return int(field.rstrip(b'\0 ') or b'0', 8)
    except ValueError:
        pass
    if field[:1] and field[0] & 0x80:  # base-256 (GNU extension)
        value = 0
        for byte in bytearray(field[1:]):
            value = (value << 8) | byte
        return value
    field = field.split(b'\0', 1)[0].strip()
    return int(field, 8) if field else 0


def _cstr(field):
    return field.split(b'\0', 1)[0]


def _pax_records(data):
    records = {}
    pos = 0
    while pos < len(data):
        space = data.index(b' ', pos)
        length = int(data[pos:space])
        if length <= 0:
            raise BackupError('malformed pax header written by tar')
        key, _sep, value = data[space + 1:pos + length - 1].partition(b'=')
        records[key.decode('utf-8', 'surrogateescape')] = value
        pos += length
    return records


_json_str = json.encoder.encode_basestring_ascii  # what JSONEncoder (ensure_ascii) uses for strings
_FILE_LINE = ('{"path":%s,"type":"file","mode":"%s","uid":%d,"gid":%d,"owner":%s,"group":%s,"mtime":%d,'
              '"size":%d,"sha256":"%s"}\n')


class TarTee(object):
    """Parse a tar stream chunk by chunk as it passes to the compressor; emit one manifest entry per member.

    The SHA-256 of every regular member is computed over the member bytes in the stream, so the
    manifest describes exactly what is archived.  Memory is bounded: only the current header, a pax
    header and the hashes of files that have more than one link are kept.
    """

    def __init__(self, emit, multi_linked):
        self.emit = emit
        self.multi = multi_linked
        self.linked = {}
        self.pending = bytearray()  # partial header / pax data
        self.need = BLOCK  # bytes wanted into ``pending`` (header or pax/long-name data)
        self.state = 'header'
        self.skip = 0  # padding still to skip
        self.remaining = 0  # member data still to hash
        self.digest = None
        self.entry = None
        self.pax = {}
        self.long_name = None
        self.long_link = None
        self.zero_blocks = 0
        self.ended = False
        self._pad = 0
        self.names = {}
        self.ids = {}
        self.modes = {}
        self.quoted = {}
        self.totals = {'entries': 0, 'files': 0, 'dirs': 0, 'symlinks': 0, 'hardlinks': 0, 'special': 0,
                       'bytes': 0}

    def feed(self, view):
        pos = 0
        size = len(view)
        while pos < size:
            if self.skip:
                step = min(self.skip, size - pos)
                self.skip -= step
                pos += step
                continue
            if self.remaining:
                step = min(self.remaining, size - pos)
                self.digest.update(view[pos:pos + step])
                self.remaining -= step
                pos += step
                if not self.remaining:
                    self._finish_file()
                continue
            if self.ended:
                return  # zero records after the end marker
            want = self.need - len(self.pending)
            take = min(want, size - pos)
            if take == want and not self.pending:
                block = bytes(view[pos:pos + want])
                pos += want
            else:
                self.pending += view[pos:pos + take]
                pos += take
                if len(self.pending) < self.need:
                    continue
                block = bytes(self.pending)
                self.pending = bytearray()
            if self.state == 'header':
                self._header(block)
            else:
                self._extension(block)

    def _extension(self, data):
        kind, length = self.state
        data = data[:length]
        if kind == 'x':
            self.pax.update(_pax_records(data))
        elif kind == 'L':
            self.long_name = _cstr(data)
        elif kind == 'K':
            self.long_link = _cstr(data)
        self.state = 'header'
        self.need = BLOCK

    def _header(self, block):
        if not block[0] and block == _ZERO_BLOCK:
            self.zero_blocks += 1
            if self.zero_blocks == 2:
                self.ended = True
            return
        if self.zero_blocks:
            raise BackupError('tar wrote a lone zero block inside the archive')
        (name, mode, uid, gid, size, mtime, _chk, flag, linkname, magic, uname, gname, devmajor,
         devminor, prefix, _pad) = USTAR.unpack(block)
        size = _octal(size)
        if flag in (b'x', b'L', b'K', b'g'):
            self.state = (flag.decode(), size)
            self.need = size + ((-size) % BLOCK)
            if size == 0:
                self.state = 'header'
                self.need = BLOCK
            return
        pax = self.pax
        if self.long_name is not None:
            path = self.long_name
        elif 'path' in pax:
            path = pax['path']
        else:
            path = name.partition(b'\0')[0]
            if prefix[0] and magic[:5] == b'ustar':
                path = prefix.partition(b'\0')[0] + b'/' + path
        kind = _TYPE_OF_FLAG.get(flag)
        if kind is None:
            raise BackupError('tar wrote a member of unexpected type %r for %s' % (flag, path))
        if pax:
            self.pax = {}
            if 'size' in pax:
                size = int(pax['size'])
            uid = int(pax['uid']) if 'uid' in pax else _octal(uid)
            gid = int(pax['gid']) if 'gid' in pax else _octal(gid)
            mtime = int(float(pax['mtime'])) if 'mtime' in pax else _octal(mtime)
            owner = self._text(pax['uname'] if 'uname' in pax else _cstr(uname))
            group = self._text(pax['gname'] if 'gname' in pax else _cstr(gname))
            xattr_names = sorted(k[13:] for k in pax if k.startswith('SCHILY.xattr.'))
        else:  # the common case: plain ustar fields, mostly repeated (cached by their raw bytes)
            uid, owner = self._id(uid, uname)
            gid, group = self._id(gid, gname)
            mtime = _octal(mtime)
            xattr_names = None
        text = path.decode('utf-8', 'surrogateescape').rstrip('/')
        mode = self._mode(mode)
        link = self.long_link
        self.long_name = self.long_link = None
        entry = {'path': '/' if text in ('', '.') else '/' + text, 'type': kind, 'mode': mode, 'uid': uid,
                 'gid': gid, 'owner': owner, 'group': group, 'mtime': mtime}
        if xattr_names:
            entry['xattrs'] = xattr_names
        totals = self.totals
        totals['entries'] += 1
        if kind == 'file':
            entry['size'] = size
            totals['files'] += 1
            totals['bytes'] += size
            self.entry = entry
            self.digest = hashlib.sha256()
            self.skip = 0
            if size:
                self.remaining = size
                self._pad = (-size) % BLOCK
            else:
                self._pad = 0
                self._finish_file()
            return
        if link is None:
            link = pax.get('linkpath', _cstr(linkname))
        if size and kind != 'hardlink':
            raise BackupError('tar wrote data for the %s member %s' % (kind, entry['path']))
        if kind == 'hardlink':
            target = '/' + link.decode('utf-8', 'surrogateescape')
            entry['link'] = target
            known = self.linked.get(target)
            if known is None:  # linked after the walk: hash the first name on disk
                try:
                    known = (sha256_file(target), os.lstat(target).st_size)
                except OSError as exc:
                    raise BackupError('cannot read %s: %s' % (target, exc.strerror or exc), path=target) from None
            entry['sha256'] = known[0]
            entry['size'] = known[1]
            totals['hardlinks'] += 1
        elif kind == 'dir':
            totals['dirs'] += 1
        elif kind == 'symlink':
            entry['target'] = link.decode('utf-8', 'surrogateescape')
            totals['symlinks'] += 1
        else:
            totals['special'] += 1
            if kind != 'fifo':
                entry['rdev'] = [_octal(devmajor), _octal(devminor)]
        self.emit(entry)

    def _text(self, raw):
        text = self.names.get(raw)
        if text is None:
            text = self.names[raw] = raw.decode('utf-8', 'surrogateescape')
        return text

    def _id(self, number, name):
        key = (number, name)
        found = self.ids.get(key)
        if found is None:
            found = self.ids[key] = (_octal(number), self._text(_cstr(name)))
        return found

    def _mode(self, raw):
        text = self.modes.get(raw)
        if text is None:
            text = self.modes[raw] = '%04o' % (_octal(raw) & 0o7777)
        return text

    def _finish_file(self):
        entry = self.entry
        entry['sha256'] = sha = self.digest.hexdigest()
        if entry['path'] in self.multi:
            self.linked[entry['path']] = (sha, entry['size'])
        if 'xattrs' in entry:
            self.emit(entry)
        else:  # the same JSON line as the encoder writes, without its per-call cost
            quoted = self.quoted
            owner = quoted.get(entry['owner']) or quoted.setdefault(entry['owner'], _json_str(entry['owner']))
            group = quoted.get(entry['group']) or quoted.setdefault(entry['group'], _json_str(entry['group']))
            self.emit(_FILE_LINE % (_json_str(entry['path']), entry['mode'], entry['uid'], entry['gid'], owner,
                                    group, entry['mtime'], entry['size'], sha))
        self.entry = self.digest = None
        self.skip = self._pad
