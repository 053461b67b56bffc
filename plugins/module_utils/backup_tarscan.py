# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Strict reader of the tar streams the backup modules write, and the one member check of verify and restore.

Restore and verify hand the archive to GNU tar.  Whatever is checked before must be exactly what GNU tar
will write, so the names are not taken from a second, more lenient parser (Python's ``tarfile`` and
GNU tar disagree on archives that carry a GNU long name *and* a pax ``path``, several extended headers
for one member, a bad checksum in the middle, octal fields with signs or underscores, data after a
directory header, ...).  Instead this reader accepts only the plain subset of POSIX tar that
``backup_snapshot`` writes, and refuses every header on which two readers could differ:

- every header is POSIX ustar (magic ``ustar\\0``, version ``00``) with a valid checksum;
- member types: regular (``0``, ``\\0``, ``7``), hard link, symlink, character/block device,
  directory, FIFO and one pax extended header (``x``) per member; no GNU long name/link (``L``/``K``),
  global pax (``g``), sparse, multi-volume or vendor headers;
- numbers: plain octal digits (leading spaces, trailing NUL/space) or GNU base-256; pax ``size``
  plain decimal digits;
- pax records: well formed ``LEN key=value\\n`` filling the header exactly, no key twice, only the
  keys GNU tar and the Python fallback writer put in our archives (``path``, ``linkpath``, ``size``,
  ``uid``, ``gid``, ``uname``, ``gname``, ``mtime``, ``atime``, ``ctime``, ``SCHILY.xattr.*``,
  ``hdrcharset=BINARY``), no NUL in a name;
- names and link targets: relative, canonical (no empty, ``.`` or ``..`` component), a trailing
  ``/`` only on directories, no data for anything but regular files;
- the archive ends with two zero blocks (a lone zero block followed by a header is refused).

:class:`MemberCheck` then checks every member against the manifest entry at the same position
(path, type, symlink and hard-link targets) and the rules that keep a restore inside its root
(nothing below a symlink member, no hard link to or through a symlink member, devices only when
allowed).  Verify feeds the same bytes it gives GNU tar through both; restore runs them over the
whole archive before anything is written.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from zlib import adler32

BLOCK = 512
_ZERO = bytes(BLOCK)
_TYPES = {b'0': 'file', b'\0': 'file', b'7': 'file', b'1': 'hardlink', b'2': 'symlink', b'3': 'chardev',
          b'4': 'blockdev', b'5': 'dir', b'6': 'fifo'}
_PAX_KEYS = frozenset(('path', 'linkpath', 'size', 'uid', 'gid', 'uname', 'gname', 'mtime', 'atime', 'ctime',
                       'hdrcharset'))
_DIGITS = frozenset(b'0123456789')
_OCTAL = frozenset(b'01234567')
#: largest pax extended header accepted (GNU tar writes a few hundred bytes per member, plus xattrs)
PAX_LIMIT = 1024 * 1024


class ArchiveRefused(Exception):
    """An archive member that is refused; ``msg`` names it (escaped) and says why."""

    def __init__(self, msg, member=None):
        super(ArchiveRefused, self).__init__(msg)
        self.msg = msg
        self.member = member


def shown(raw):
    """A name (bytes) as text for messages: UTF-8 as is, any other byte as ``\\xNN``."""
    return raw.decode('utf-8', 'backslashreplace')


class Member(object):
    """One archive member: ``name`` and ``link`` are bytes (canonical, no trailing slash)."""

    __slots__ = ('link', 'name', 'offset', 'size', 'type')

    def __init__(self, name, kind, link, size, offset):
        self.name = name
        self.type = kind
        self.link = link
        self.size = size
        self.offset = offset


def _octal(field, what, offset):
    head = field[:-1]
    if head.isdigit() and field[-1] in (0, 32):  # the common case: zero-padded digits and one terminator
        try:
            return int(head, 8)
        except ValueError:
            pass  # an 8 or a 9: refused below
    if field[:1] and field[0] & 0x80:
        if field[0] != 0x80:
            raise ArchiveRefused('tar header at byte %d: negative or oversized base-256 %s' % (offset, what))
        value = 0
        for byte in bytearray(field[1:]):
            value = (value << 8) | byte
        return value
    digits = field.lstrip(b' ').rstrip(b'\0 ')
    if not digits:
        return 0
    if not set(digits) <= _OCTAL:
        raise ArchiveRefused('tar header at byte %d: %s field %r is not plain octal' % (offset, what, field))
    return int(digits, 8)


def _checksum_ok(block):
    field = block[148:156]
    head = field[:6]
    if head.isdigit() and field[6] in (0, 32) and b'8' not in head and b'9' not in head:  # "%06o\0 "
        stored = int(head, 8)
    else:
        try:
            stored = _octal(field, 'checksum', 0)
        except ArchiveRefused:
            return False
    # The unsigned byte sum, computed in C: Adler-32's first half is 1 + the byte sum modulo 65521, and
    # the sum of 256 bytes (at most 65280) is below the modulus, so each half gives its exact sum.
    unsigned = (adler32(block[:256]) & 0xffff) + (adler32(block[256:]) & 0xffff) - 2 - sum(field) + 256
    if stored == unsigned:  # the checksum field itself counts as eight spaces
        return True
    data = block[:148] + b'        ' + block[156:]
    return stored == unsigned - 256 * sum(1 for b in data if b > 127)  # old writers summed signed chars


def canonical(raw, is_dir, what, offset):
    """The canonical form of a member name or link target (bytes); ArchiveRefused when it has none."""
    name = raw[:-1] if is_dir and raw[-1:] == b'/' else raw
    if (name and name[:1] not in b'./' and name[-1:] != b'/' and b'/.' not in name and b'//' not in name
            and b'\0' not in name):
        return name  # the common case: nothing to look at more closely
    if b'\0' in raw:
        raise ArchiveRefused('refusing archive member %r: %s contains a NUL byte' % (shown(raw), what), raw)
    name = raw
    if name.endswith(b'/'):
        if not is_dir:
            raise ArchiveRefused('refusing archive member %r: %s ends with "/" but is not a directory'
                                 % (shown(raw), what), raw)
        name = name[:-1]
    if name == b'.' and is_dir:
        return name
    if not name or name.startswith(b'/'):
        raise ArchiveRefused('refusing archive member %r: %s is an absolute path' % (shown(raw), what), raw)
    parts = name.split(b'/')
    if b'..' in parts:
        raise ArchiveRefused("refusing archive member %r: %s contains '..'" % (shown(raw), what), raw)
    if b'' in parts or b'.' in parts:
        raise ArchiveRefused("refusing archive member %r: %s is not canonical (empty or '.' component)"
                             % (shown(raw), what), raw)
    return name


def _pax_records(data, offset):
    records = {}
    pos = 0
    size = len(data)
    while pos < size:
        space = data.find(b' ', pos, pos + 21)
        digits = data[pos:space] if space > pos else b''
        if not digits or not set(digits) <= _DIGITS or (digits[:1] == b'0'):
            raise ArchiveRefused('pax header at byte %d: malformed record length at offset %d' % (offset, pos))
        length = int(digits)
        end = pos + length
        if end > size or length <= len(digits) + 2 or data[end - 1:end] != b'\n':
            raise ArchiveRefused('pax header at byte %d: record at offset %d does not end where its length says'
                                 % (offset, pos))
        key, sep, value = data[space + 1:end - 1].partition(b'=')
        if not sep or not key:
            raise ArchiveRefused('pax header at byte %d: record at offset %d has no key=value' % (offset, pos))
        try:
            text = key.decode('ascii')
        except UnicodeDecodeError:
            raise ArchiveRefused('pax header at byte %d: key %r is not ASCII' % (offset, key)) from None
        if text not in _PAX_KEYS and not (text.startswith('SCHILY.xattr.') and len(text) > 13):
            raise ArchiveRefused('pax header at byte %d: key %r is not accepted (backup archives only carry '
                                 'path, linkpath, size, ids, names, times and SCHILY.xattr.*)' % (offset, text))
        if text == 'hdrcharset' and value != b'BINARY':
            raise ArchiveRefused('pax header at byte %d: hdrcharset %r is not accepted (only BINARY, which '
                                 "Python's tarfile writes for names that are not UTF-8)" % (offset, value))
        if text in records:
            raise ArchiveRefused('pax header at byte %d: key %r appears twice' % (offset, text))
        records[text] = value
        pos = end
    return records


class TarReader(object):
    """Push parser: ``feed`` the stream in chunks of any size, ``close`` at its end.

    Calls ``on_member(member)`` once per member, in archive order, before any of the member's data
    is fed.  Raises ArchiveRefused on anything outside the accepted subset (see the module docstring).
    """

    def __init__(self, on_member):
        self.on_member = on_member
        self.pending = bytearray()
        self.need = BLOCK
        self.state = None  # None: a header is wanted; else the size of the pax header being read
        self.skip = 0
        self.offset = 0  # stream offset of the next byte handed to the parser
        self.pax = None
        self.pax_offset = 0
        self.zero = False
        self.ended = False
        self.count = 0

    def feed(self, view):
        pos = 0
        size = len(view)
        while pos < size:
            skip = self.skip
            if skip:
                step = size - pos
                if skip < step:
                    step = skip
                self.skip = skip - step
                pos += step
                self.offset += step
                continue
            if self.ended:
                return  # after the end marker: neither reader looks at it
            need = self.need
            if size - pos >= need and not self.pending:  # the whole header is in this chunk
                data = view[pos:pos + need].tobytes()
                pos += need
                self.offset += need
            else:
                take = min(need - len(self.pending), size - pos)
                self.pending += view[pos:pos + take]
                pos += take
                self.offset += take
                if len(self.pending) < need:
                    continue
                data = bytes(self.pending)
                self.pending = bytearray()
            if self.state is None:
                self._header(data, self.offset - BLOCK)
            else:
                self._pax(data[:self.state])

    def close(self):
        if self.skip or self.pending or self.state is not None:
            raise ArchiveRefused('the archive ends inside a member (truncated at byte %d)' % self.offset)
        if not self.ended:
            raise ArchiveRefused('the archive ends without its end-of-archive marker (byte %d)' % self.offset)

    def _pax(self, data):
        self.pax = _pax_records(data, self.pax_offset)
        self.state = None
        self.need = BLOCK

    def _header(self, block, offset):
        if block == _ZERO:
            if self.pax is not None:
                raise ArchiveRefused('pax header at byte %d is followed by the end of the archive' % self.pax_offset)
            if self.zero:
                self.ended = True
            self.zero = True
            return
        if self.zero:
            raise ArchiveRefused('a lone zero block at byte %d is followed by another header (readers differ on '
                                 'whether the archive ends there)' % (offset - BLOCK))
        if not _checksum_ok(block):
            raise ArchiveRefused('tar header at byte %d has a bad checksum' % offset)
        flag = block[156:157]
        if flag != b'x' and flag not in _TYPES:
            raise ArchiveRefused('tar header at byte %d has type %r, which backup archives never contain '
                                 '(GNU long names, global or sparse headers and vendor types are refused)'
                                 % (offset, flag))
        if block[257:265] != b'ustar\x0000':
            raise ArchiveRefused('tar header at byte %d is not a POSIX ustar header (magic %r)'
                                 % (offset, block[257:265]))
        size = _octal(block[124:136], 'size', offset)
        if flag == b'x':
            if self.pax is not None:
                raise ArchiveRefused('two pax extended headers for one member (the second at byte %d)' % offset)
            if size > PAX_LIMIT:
                raise ArchiveRefused('pax header at byte %d is %d bytes, over the limit of %d'
                                     % (offset, size, PAX_LIMIT))
            self.pax_offset = offset
            if size == 0:
                self.pax = {}
                return
            self.state = size
            self.need = size + (-size) % BLOCK
            return
        kind = _TYPES[flag]
        pax = self.pax or {}
        self.pax = None
        if 'size' in pax:
            digits = pax['size']
            if not digits or not set(digits) <= _DIGITS:
                raise ArchiveRefused('pax header at byte %d: size %r is not a decimal number'
                                     % (self.pax_offset, digits))
            size = int(digits)
        if 'path' in pax:
            raw = pax['path']
        else:
            raw = block[0:100].partition(b'\0')[0]
            prefix = block[345:500].partition(b'\0')[0]
            if prefix:
                raw = prefix + b'/' + raw
        name = canonical(raw, kind == 'dir', 'the name', offset)
        link = None
        if kind in ('hardlink', 'symlink'):
            link = pax['linkpath'] if 'linkpath' in pax else block[157:257].partition(b'\0')[0]
            if b'\0' in link or not link:
                raise ArchiveRefused('refusing archive member %r: empty link target or NUL byte in it'
                                     % shown(name), name)
        elif 'linkpath' in pax:
            raise ArchiveRefused('refusing archive member %r: a link target on a member of type %s'
                                 % (shown(name), kind), name)
        if size and kind != 'file':
            raise ArchiveRefused('refusing archive member %r: %d bytes of data on a member of type %s (readers '
                                 'differ on skipping it)' % (shown(name), size, kind), name)
        self.count += 1
        self.on_member(Member(name, kind, link, size, offset))
        if size:
            self.skip = size + (-size) % BLOCK


class MemberCheck(object):
    """The member check shared by verify and restore: one call per archive member, in order.

    ``entries``: the manifest entries (after its header).  ``allow_devices``: accept device nodes.
    ``extra``: optional callable(member) for the caller's own checks (restore: the target on disk).
    """

    def __init__(self, entries, allow_devices=True, extra=None):
        self.entries = entries
        self.allow_devices = allow_devices
        self.also = extra
        self.symlinks = set()
        self.count = 0

    def _below_symlink(self, name, inclusive):
        symlinks = self.symlinks
        if not symlinks:
            return None
        if inclusive and name in symlinks:
            return name
        pos = name.find(b'/')
        while pos != -1:
            head = name[:pos]
            if head in symlinks:
                return head
            pos = name.find(b'/', pos + 1)
        return None

    def __call__(self, member):
        name = member.name
        kind = member.type
        below = self._below_symlink(name, False) if self.symlinks else None
        if below is not None:
            raise ArchiveRefused('refusing archive member %r: it lies below the symlink member %r'
                                 % (shown(name), shown(below)), name)
        link_text = None
        if kind == 'hardlink':
            target = member.link = canonical(member.link, False, 'the hard-link target', member.offset)
            through = self._below_symlink(target, True)
            if through is not None:
                raise ArchiveRefused('refusing hard link %r -> %r: target goes through the symlink member %r'
                                     % (shown(name), shown(target), shown(through)), name)
            link_text = '/' + target.decode('utf-8', 'surrogateescape')
        elif kind == 'symlink':
            self.symlinks.add(name)
            link_text = member.link.decode('utf-8', 'surrogateescape')
        elif kind in ('chardev', 'blockdev') and not self.allow_devices:
            raise ArchiveRefused('refusing device file member %r; set allow_devices=true to restore device nodes'
                                 % shown(name), name)
        entry = next(self.entries, None)
        text = name.decode('utf-8', 'surrogateescape')
        path = '/' if text == '.' else '/' + text
        if entry is None:
            raise ArchiveRefused('archive member %r does not match the manifest (the manifest has ended; the '
                                 'archive has more members)' % shown(name), name)
        if entry.get('path') != path:
            raise ArchiveRefused('archive member %r does not match the manifest (expected %r)'
                                 % (shown(name), _shown_text(entry.get('path'))), name)
        expected = entry.get('type')
        if expected != kind:
            raise ArchiveRefused('archive member %r does not match the manifest: type %s, manifest says %s'
                                 % (shown(name), kind, _shown_text(expected)), name)
        if kind == 'symlink' and entry.get('target') != link_text:
            raise ArchiveRefused('archive member %r does not match the manifest: symlink target differs'
                                 % shown(name), name)
        if kind == 'hardlink' and entry.get('link') != link_text:
            raise ArchiveRefused('archive member %r does not match the manifest: hard-link target differs'
                                 % shown(name), name)
        if kind == 'file' and entry.get('size') != member.size:
            raise ArchiveRefused('archive member %r does not match the manifest: %d bytes, manifest says %r'
                                 % (shown(name), member.size, entry.get('size')), name)
        if self.also is not None:
            self.also(member)
        self.count += 1

    def finish(self):
        """Call after the last member: the manifest must have no entries left."""
        if next(self.entries, None) is not None:
            raise ArchiveRefused('the archive has fewer members than the manifest lists (%d members read)'
                                 % self.count)


def _shown_text(value):
    if isinstance(value, str):
        return shown(value.encode('utf-8', 'surrogateescape'))
    return value
