# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Container formats recognised by their first bytes, before anything is unpacked.

:func:`sniff` names the format of data (``ar``, ``rpm``, ``gzip``, ``tar``, ``zip``, ...);
compressors that neither the unpacker nor ClamAV decode are named too, so their content fails
closed; :func:`zip_declared_entries` reads a zip's entry count before ``zipfile`` does.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import struct


# zstd skippable frames (magic 0x184D2A50-0x184D2A5F, little-endian) may precede the data.
_ZSTD_SKIPPABLE = tuple(bytes([b]) for b in range(0x50, 0x60))
# Names that promise a container: content with such a name that is none of the known formats
# fails closed instead of being passed to the scanner as opaque bytes.
ARCHIVE_SUFFIXES = ('.deb', '.udeb', '.ipk', '.rpm', '.tar', '.tgz', '.tbz', '.tbz2', '.txz', '.tzst',
                    '.gz', '.bz2', '.xz', '.zst', '.lzma', '.cpio', '.zip')


# Compressors that tar or other consumers decode but neither this module nor ClamAV does: their
# content cannot be scanned, so they fail closed wherever they appear.
_UNSUPPORTED_MAGIC = ((b'LZIP', 'lzip'), (b'\x89LZO\x00\r\n\x1a\n', 'lzop'), (b'\x1f\x9d', 'compress'),
                      (b'\x04\x22\x4d\x18', 'lz4'))
UNSUPPORTED_FORMATS = tuple(name for _magic, name in _UNSUPPORTED_MAGIC)


def sniff(head, hint=''):
    """Container format of data starting with ``head`` (at least 512 bytes when available)."""
    if head.startswith(b'!<arch>\n'):
        return 'ar'
    if head.startswith(b'!<thin>\n'):
        return 'ar-thin'
    if head.startswith(b'\xed\xab\xee\xdb'):
        return 'rpm'
    if head.startswith(b'\x1f\x8b'):
        return 'gzip'
    if head.startswith(b'BZh') and head[3:4].isdigit():
        return 'bzip2'
    if head.startswith(b'\xfd7zXZ\x00'):
        return 'xz'
    if head.startswith(b'\x28\xb5\x2f\xfd') or (head[:1] in _ZSTD_SKIPPABLE and head[1:4] == b'\x2a\x4d\x18'):
        return 'zstd'
    if hint.lower().endswith('.lzma') and head[:1] == b'\x5d':
        return 'lzma'
    for magic, name in _UNSUPPORTED_MAGIC:
        if head.startswith(magic):
            return name
    if head.startswith(b'PK\x03\x04') or head.startswith(b'PK\x05\x06'):
        return 'zip'
    if head[:6] in (b'070701', b'070702', b'070707'):
        return 'cpio'
    if _looks_like_tar(head):
        return 'tar'
    return None


def _looks_like_tar(head):
    if len(head) < 512:
        return False
    block = head[:512]
    if block[257:262] == b'ustar':
        return True
    try:
        stored = int(block[148:156].replace(b'\x00', b' ').strip() or b'x', 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    return stored == unsigned and any(block[:100])


def zip_declared_entries(fd):
    """Entry count from a zip's end-of-central-directory record (zip64 too), or None.

    Read before ``zipfile`` builds one object per central-directory entry in memory.
    """
    size = os.fstat(fd).st_size
    tail_len = min(size, 65536 + 22)
    tail = os.pread(fd, tail_len, size - tail_len)
    pos = tail.rfind(b'PK\x05\x06')
    if pos < 0 or pos + 22 > len(tail):
        return None
    count = struct.unpack('<H', tail[pos + 10:pos + 12])[0]
    if count != 0xFFFF:
        return count
    locator = pos - 20
    if locator < 0 or tail[locator:locator + 4] != b'PK\x06\x07':
        return None
    eocd64 = struct.unpack('<Q', tail[locator + 8:locator + 16])[0]
    record = os.pread(fd, 56, eocd64)
    if len(record) < 56 or record[:4] != b'PK\x06\x06':
        return None
    return struct.unpack('<Q', record[32:40])[0]
