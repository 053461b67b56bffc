# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bounded unpacking of artifacts for the malware scan.

ClamAV does not open every container: a ``.deb`` is an ``ar`` archive, which clamscan scans as
raw bytes, so malware inside its ``data.tar.gz``/``.xz``/``.zst`` is never seen; an ``.rpm``
payload is a compressed ``cpio`` behind RPM headers. :class:`Unpacker` opens these (and the
containers they hold) with its own readers and writes every member as a plain file under a
generated name (``m000001``...) in a private temporary directory, so the scanner sees the
contents. Names inside archives are never used as paths: nothing is created or followed
outside that directory. Links, devices and directories inside archives carry no content and
are not written.

Formats: ``ar`` (GNU and BSD names; thin archives refused), RPM (lead, signature and main
header, payload compressed with gzip, bzip2, xz, lzma or zstd, ``cpio`` newc/odc), ``cpio``
newc/crc/odc, ``tar`` (plain, gzip, bzip2, xz, lzma, zstd; read forward-only), ``zip`` and
single gzip/bzip2/xz/zstd streams. zstd needs the ``zstd`` program (the standard library has
no zstd decoder); without it a zstd member cannot be unpacked, which is an error.

Everything is bounded per artifact: total bytes written (``max_bytes``), members
(``max_members``), nesting (``max_depth``) and wall time (``timeout``). Anything that cannot be
unpacked completely (limit reached, corrupt or truncated data, encrypted member, unsupported
variant, missing decompressor) raises :class:`UnpackError` naming the member; the caller
fails the scan with that reason. Only the standard library is used.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import bz2
import gzip
import lzma
import os
import shutil
import stat
import struct
import tarfile
import tempfile
import time
import zipfile
import zlib

from ansible_collections.itsop.change.plugins.module_utils._artifact.formats import (
    ARCHIVE_SUFFIXES,
    UNSUPPORTED_FORMATS,
    sniff,
    zip_declared_entries,
)
from ansible_collections.itsop.change.plugins.module_utils._artifact.streams import (
    COPY_CHUNK,
    MAX_HEADER_BYTES,
    Chain,
    ForwardReader,
    Limited,
    ZstdReader,
)
from ansible_collections.itsop.change.plugins.module_utils._artifact.text import printable
from ansible_collections.itsop.change.plugins.module_utils._artifact.verdict import UnpackError


# Containers listed in the evidence (the count is always complete).
MAX_LISTED_CONTAINERS = 100


class Unpacker:
    """Unpack one artifact into a private temporary directory (see the module docstring)."""

    def __init__(self, max_bytes, max_members=10000, max_depth=8, timeout=600, tmpdir=None,
                 zstd_binary='zstd'):
        self.max_bytes = int(max_bytes)
        self.max_members = int(max_members)
        self.max_depth = int(max_depth)
        self.timeout = timeout
        self.tmpdir = tmpdir
        self.zstd_binary = zstd_binary
        self.dir = None
        self._dirfd = None
        self.members = []        # {'path', 'member', 'size'}
        self.containers = []     # {'member', 'format'}
        self.bytes = 0
        self.read_total = 0
        self._seq = 0
        self.count = 0
        self.started = None
        self.deadline = None

    # ---------------------------------------------------------------------------- public
    def unpack(self, path, label, fd=None):
        """Unpack ``path`` (shown as ``label``) recursively; raises UnpackError.

        With ``fd`` (an open descriptor of ``path``, e.g. the one that was hashed) the artifact is
        read from that descriptor, so the file unpacked is the file checked.

        Members written so far stay listed in :attr:`members` after an error (they are still
        scanned); :meth:`cleanup` removes the directory.
        """
        self.started = time.monotonic()
        self.deadline = self.started + self.timeout
        self.dir = tempfile.mkdtemp(prefix='itsop-unpack-', dir=self.tmpdir)
        os.chmod(self.dir, 0o700)
        self._dirfd = os.open(self.dir, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
        self._explore_file(path, printable(label), 0, hint=label, top=True, top_fd=fd)
        return self.summary()

    def summary(self):
        return {'members': len(self.members), 'bytes': self.bytes,
                'containers': self.containers[:MAX_LISTED_CONTAINERS],
                'containers_total': len(self.containers),
                'seconds': round(time.monotonic() - self.started, 6) if self.started else 0.0}

    def cleanup(self):
        if self._dirfd is not None:
            os.close(self._dirfd)
            self._dirfd = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # ---------------------------------------------------------------------------- limits
    def _check(self, extra_bytes, read_bytes=0):
        self.read_total += read_bytes
        if self.read_total > 2 * self.max_bytes + 64 * 1024 * 1024:
            raise UnpackError('decompressed data exceed twice the limit of %d bytes (max_scansize)'
                              % self.max_bytes)
        if time.monotonic() > self.deadline:
            raise UnpackError('unpacking took longer than %s seconds' % self.timeout)
        if self.bytes + extra_bytes > self.max_bytes:
            raise UnpackError('unpacked contents exceed the limit of %d bytes (max_scansize)' % self.max_bytes)

    def _new_member(self, display):
        self.count += 1
        if self.count > self.max_members:
            raise UnpackError('more than %d members (max_files) at %s' % (self.max_members, display))
        self._check(0)

    def _write(self, reader, display, expected=None):
        """Copy ``reader`` (bounded) into a new member file; returns its path."""
        self._seq += 1
        name = 'm%06d' % self._seq
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
        fd = os.open(name, flags, 0o600, dir_fd=self._dirfd)
        path = os.path.join(self.dir, name)
        entry = {'path': path, 'member': display, 'size': 0}
        self.members.append(entry)
        written = 0
        with os.fdopen(fd, 'wb') as out:
            while expected is None or written < expected:
                want = COPY_CHUNK if expected is None else min(COPY_CHUNK, expected - written)
                self._check(want if expected is not None else 0)
                chunk = reader.read(want)
                if not chunk:
                    break
                self.bytes += len(chunk)
                written += len(chunk)
                entry['size'] = written
                self._check(0)
                out.write(chunk)
        if expected is not None and written != expected:
            self._check(0)  # a decompressor killed at the deadline ends early: report the time
            raise UnpackError('%s: truncated (%d of %d bytes)' % (display, written, expected))
        if written == 0:
            # nothing to scan (clamscan answers "Empty file", not OK): counted, not listed
            self.members.pop()
            os.unlink(name, dir_fd=self._dirfd)
            return None
        return path

    # ---------------------------------------------------------------------------- dispatch
    def _explore_file(self, path, display, depth, hint='', top=False, top_fd=None):
        if top and top_fd is not None:
            fd = os.dup(top_fd)
        elif top:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_NOCTTY', 0)
                         | getattr(os, 'O_CLOEXEC', 0))
        else:
            fd = os.open(os.path.basename(path), os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0)
                         | getattr(os, 'O_CLOEXEC', 0), dir_fd=self._dirfd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnpackError('%s: not a regular file' % display)
            head = os.pread(fd, 512, 0)
            fmt = sniff(head, hint)
            if fmt is None:
                if hint.lower().endswith(ARCHIVE_SUFFIXES):
                    raise UnpackError('%s: named like an archive or package but not one of the formats '
                                      'that can be unpacked; its contents cannot be scanned' % display)
                return
            if depth >= self.max_depth:
                raise UnpackError('%s: %s nested deeper than %d levels (max_recursion)'
                                  % (display, fmt, self.max_depth))
            self.containers.append({'member': display, 'format': fmt})
            if fmt in UNSUPPORTED_FORMATS:
                raise UnpackError('%s: %s-compressed data cannot be unpacked here (nor by ClamAV); its '
                                  'contents cannot be scanned' % (display, fmt))
            try:
                if fmt == 'ar':
                    self._ar(fd, display, depth)
                elif fmt == 'ar-thin':
                    raise UnpackError('thin ar archive: its members are outside the file')
                elif fmt == 'rpm':
                    self._rpm(fd, display, depth)
                elif fmt == 'zip':
                    self._zip(fd, display, depth)
                else:
                    self._stream(fd, 0, fmt, display, depth)
            except UnpackError as exc:
                text = str(exc)
                raise UnpackError(text if text.startswith(display) else '%s: %s' % (display, text)) from None
            except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, tarfile.TarError,
                    zipfile.BadZipFile, NotImplementedError, RuntimeError, struct.error) as exc:
                raise UnpackError('%s: cannot unpack %s (%s: %s)' % (display, fmt, type(exc).__name__, exc)) from None
        finally:
            os.close(fd)

    def _child(self, reader, display, depth, expected=None, hint=''):
        self._new_member(display)
        path = self._write(reader, display, expected)
        if path is not None:
            self._explore_file(path, display, depth + 1, hint=hint)

    # ---------------------------------------------------------------------------- compression
    def _decompressor(self, fd, offset, fmt):
        """A reader of the decompressed data of ``fd`` from ``offset``; returns (reader, closer)."""
        if fmt == 'zstd':
            if os.path.sep in self.zstd_binary:
                binary = self.zstd_binary if os.access(self.zstd_binary, os.X_OK) else None
            else:
                binary = shutil.which(self.zstd_binary)
            if not binary:
                raise UnpackError('zstd-compressed data cannot be unpacked: program %s not found'
                                  % self.zstd_binary)
            dup = os.dup(fd)
            try:
                os.lseek(dup, offset, os.SEEK_SET)
                reader = ZstdReader(dup, binary, self.deadline)
            finally:
                os.close(dup)
            return reader, reader.close
        raw = os.fdopen(os.dup(fd), 'rb')
        raw.seek(offset)
        if fmt == 'gzip':
            reader = gzip.GzipFile(fileobj=raw, mode='rb')
        elif fmt == 'bzip2':
            reader = bz2.BZ2File(raw, 'rb')
        elif fmt == 'xz':
            reader = lzma.LZMAFile(raw, 'rb', format=lzma.FORMAT_XZ)
        elif fmt == 'lzma':
            reader = lzma.LZMAFile(raw, 'rb', format=lzma.FORMAT_ALONE)
        elif fmt in ('tar', 'cpio'):
            reader = raw
        else:
            raw.close()
            raise UnpackError('unsupported compression %s' % fmt)

        def closer(check=False):
            reader.close()
            raw.close()
        return reader, closer

    def _stream(self, fd, offset, fmt, display, depth, payload_format=None):
        """Unpack a (possibly compressed) tar, cpio or single stream starting at ``offset``."""
        reader, closer = self._decompressor(fd, offset, fmt)
        ok = False
        try:
            fwd = ForwardReader(reader, display, self._check)
            if fmt in ('tar', 'cpio'):
                inner = fmt
                head = b''
            else:
                head = fwd.read(512)
                inner = sniff(head)
                if payload_format == 'cpio' and inner != 'cpio':
                    raise UnpackError('RPM payload is not a cpio archive')
            chained = Chain(head, fwd)
            if inner == 'tar':
                self._tar(chained, display, depth)
            elif inner == 'cpio':
                self._cpio(chained, display, depth)
            else:
                inner_display = '%s!<%s content>' % (display, fmt)
                self._child(chained, inner_display, depth)
            ok = True
        finally:
            try:
                closer(check=ok)
            except UnpackError:
                if ok:
                    raise

    # ---------------------------------------------------------------------------- formats
    def _ar(self, fd, display, depth):
        size = os.fstat(fd).st_size
        pos = 8
        long_names = b''
        while pos < size:
            if pos + 60 > size:
                raise UnpackError('truncated ar member header at byte %d' % pos)
            header = os.pread(fd, 60, pos)
            if header[58:60] != b'`\n':
                raise UnpackError('corrupt ar member header at byte %d' % pos)
            raw_name = header[0:16].rstrip(b' ')
            try:
                length = int(header[48:58].strip() or b'x')
            except ValueError:
                raise UnpackError('corrupt ar member size at byte %d' % pos) from None
            data_start = pos + 60
            if length < 0 or data_start + length > size:
                raise UnpackError('ar member at byte %d claims %d bytes beyond the end of the file'
                                  % (pos, length))
            name = raw_name
            if raw_name.startswith(b'#1/'):
                try:
                    name_len = int(raw_name[3:])
                except ValueError:
                    raise UnpackError('corrupt BSD ar name at byte %d' % pos) from None
                if name_len > length or name_len > 4096:
                    raise UnpackError('corrupt BSD ar name at byte %d' % pos)
                name = os.pread(fd, name_len, data_start).rstrip(b'\x00')
                data_start += name_len
                length -= name_len
            elif raw_name == b'//':
                if length > MAX_HEADER_BYTES:
                    raise UnpackError('ar long-name table of %d bytes' % length)
                long_names = os.pread(fd, length, data_start)
            elif raw_name.startswith(b'/') and raw_name[1:].isdigit():
                offset = int(raw_name[1:])
                end = long_names.find(b'\n', offset)
                name = long_names[offset:end if end >= 0 else None].rstrip(b'/')
            elif raw_name.endswith(b'/') and raw_name != b'/':
                name = raw_name[:-1]
            member_display = '%s!%s' % (display, printable(name))
            reader = os.fdopen(os.dup(fd), 'rb')
            try:
                reader.seek(data_start)
                self._child(reader, member_display, depth, expected=length, hint=printable(name))
            finally:
                reader.close()
            pos = data_start + length
            pos += pos % 2

    def _tar(self, reader, display, depth):
        try:
            archive = tarfile.open(fileobj=reader, mode='r:')
        except tarfile.ReadError as exc:
            raise UnpackError('not a readable tar archive (%s)' % exc) from None
        with archive:
            while True:
                member = archive.next()
                if member is None:
                    break
                member_display = '%s!%s' % (display, printable(member.name))
                if not member.isreg():
                    # links, directories and devices carry no content, but count as members
                    self._new_member(member_display)
                    continue
                handle = archive.extractfile(member)
                self._child(handle, member_display, depth, expected=member.size, hint=member.name)
        self._trailing(reader, display, depth)

    def _trailing(self, reader, display, depth):
        """Data after the end of a tar/cpio archive in the same stream: scanned, never skipped."""
        while True:
            chunk = reader.read(COPY_CHUNK)
            if not chunk:
                return
            if chunk.strip(b'\x00'):
                self._child(Chain(chunk, reader), '%s!<data after the end of the archive>' % display, depth)
                return

    def _cpio(self, reader, display, depth):
        while True:
            self._check(0)
            magic = reader.read(6)
            if len(magic) < 6:
                raise UnpackError('truncated cpio archive (no trailer)')
            if magic in (b'070701', b'070702'):
                header = reader.read(104)
                if len(header) < 104:
                    raise UnpackError('truncated cpio header')
                try:
                    fields = [int(header[i:i + 8], 16) for i in range(0, 104, 8)]
                except ValueError:
                    raise UnpackError('corrupt cpio header') from None
                mode, filesize, namesize = fields[1], fields[6], fields[11]
                name = reader.read(namesize)
                pad = (4 - (110 + namesize) % 4) % 4
                reader.read(pad)
                data_pad = (4 - filesize % 4) % 4
            elif magic == b'070707':
                header = reader.read(70)
                if len(header) < 70:
                    raise UnpackError('truncated cpio header')
                try:
                    mode = int(header[12:18], 8)
                    namesize = int(header[53:59], 8)
                    filesize = int(header[59:70], 8)
                except ValueError:
                    raise UnpackError('corrupt cpio header') from None
                name = reader.read(namesize)
                data_pad = 0
            else:
                raise UnpackError('unsupported cpio header %r' % printable(magic))
            if namesize > 4096 or len(name) < namesize:
                raise UnpackError('corrupt cpio member name')
            name = name.rstrip(b'\x00')
            if name == b'TRAILER!!!':
                self._trailing(reader, display, depth)
                return
            member_display = '%s!%s' % (display, printable(name))
            if stat.S_ISREG(mode) and filesize > 0:
                self._child(Limited(reader, filesize), member_display, depth, expected=filesize,
                            hint=printable(name))
            elif filesize:
                reader.read(filesize)  # symlink target: no content to scan
            reader.read(data_pad)

    def _zip(self, fd, display, depth):
        declared = zip_declared_entries(fd)
        if declared is not None and self.count + declared > self.max_members:
            raise UnpackError('zip declares %d entries, more than %d members (max_files)'
                              % (declared, self.max_members))
        handle = os.fdopen(os.dup(fd), 'rb')
        with handle, zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
            if len(infos) > self.max_members:
                raise UnpackError('more than %d members (max_files)' % self.max_members)
            for info in infos:
                if info.is_dir():
                    continue
                member_display = '%s!%s' % (display, printable(info.filename))
                if info.flag_bits & 0x1:
                    raise UnpackError('%s: encrypted member cannot be scanned' % member_display)
                self._check(info.file_size)
                with archive.open(info) as member:
                    self._child(member, member_display, depth, expected=info.file_size,
                                hint=info.filename)

    def _rpm(self, fd, display, depth):
        size = os.fstat(fd).st_size
        pos = 96  # lead
        tags = {}
        for index in range(2):
            header = os.pread(fd, 16, pos)
            if len(header) < 16 or header[:3] != b'\x8e\xad\xe8':
                raise UnpackError('corrupt RPM %s header at byte %d' % (('signature', 'main')[index], pos))
            count, store = struct.unpack('>II', header[8:16])
            total = 16 * count + store
            if count > 65536 or total > MAX_HEADER_BYTES or pos + 16 + total > size:
                raise UnpackError('RPM header at byte %d is too large or truncated' % pos)
            if index == 1:
                blob = os.pread(fd, total, pos + 16)
                data = blob[16 * count:]
                for entry in range(count):
                    tag, kind, offset, _cnt = struct.unpack('>IIII', blob[16 * entry:16 * entry + 16])
                    if kind == 6 and tag in (1124, 1125) and offset < len(data):
                        end = data.find(b'\x00', offset)
                        tags[tag] = data[offset:end if end >= 0 else None].decode('ascii', 'replace')
            pos += 16 + total
            if index == 0:
                pos += (8 - pos % 8) % 8
        payload_format = tags.get(1124, 'cpio')
        if payload_format != 'cpio':
            raise UnpackError('unsupported RPM payload format %r' % printable(payload_format))
        head = os.pread(fd, 512, pos)
        fmt = sniff(head)
        compressor = tags.get(1125, 'gzip')
        if fmt is None and compressor == 'lzma':
            fmt = 'lzma'
        if fmt not in ('gzip', 'bzip2', 'xz', 'lzma', 'zstd', 'cpio'):
            raise UnpackError('unsupported RPM payload (compressor %r)' % printable(compressor))
        self._stream(fd, pos, fmt, display + '!<payload>', depth, payload_format='cpio')
