# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Streaming hashes of artifacts and the digest notation of the options.

A file is hashed from the descriptor that was checked to be a regular file of bounded size, in
one pass for every requested algorithm (``sha256``, ``sha512``).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib
import os
import re
import time

from ansible_collections.itsop.change.plugins.module_utils._artifact.verdict import VerifyError
from ansible_collections.itsop.change.plugins.module_utils.safe_input import (
    InputError,
    open_regular_file,
)


DEFAULT_BUFFER_SIZE = 4 * 1024 * 1024


DIGEST_LENGTHS = {'sha256': 64, 'sha512': 128}
_HEX_RE = re.compile(r'^[0-9a-fA-F]+$')


def hash_file(path, algorithms=('sha256',), buffer_size=DEFAULT_BUFFER_SIZE, limit=None,
              what='artifact'):
    """Hash ``path`` in one streaming pass.

    The file is opened ``O_NONBLOCK`` and must be a regular file (``fstat`` on the open
    descriptor; a FIFO or device raises :class:`InputError` without blocking) of at most
    ``limit`` bytes; the digests are computed from that descriptor, so the file checked is the
    file hashed. Returns ``{'size', 'digests', 'seconds', 'identity'}`` where ``identity`` is
    :func:`file_identity` of the hashed file.
    """
    fd, st = open_regular_file(path, limit, what)
    try:
        result = hash_fd(fd, algorithms, buffer_size, limit=limit, what='%s %s' % (what, path))
    finally:
        os.close(fd)
    result['identity'] = file_identity(st)
    return result


def file_identity(st):
    """What must not change while a file is verified (ctime catches a reset mtime too)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def hash_fd(fd, algorithms=('sha256',), buffer_size=DEFAULT_BUFFER_SIZE, limit=None, what='file'):
    """Hash an open descriptor from its current offset to its end (see :func:`hash_file`).

    Reads with ``readinto`` into one reused buffer (no per-chunk allocation) and feeds every
    requested algorithm from a memoryview.
    """
    hashers = [(name, hashlib.new(name)) for name in sorted(set(algorithms))]
    buf = bytearray(buffer_size)
    view = memoryview(buf)
    size = 0
    started = time.monotonic()
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except (AttributeError, OSError):
        pass
    handle = os.fdopen(os.dup(fd), 'rb', buffering=0)
    with handle:
        readinto = handle.readinto
        updates = [h.update for _name, h in hashers]
        while True:
            count = readinto(buf)
            if not count:
                break
            size += count
            if limit is not None and size > limit:
                raise InputError('%s: grew past the limit of %d bytes while being read' % (what, limit))
            chunk = view[:count] if count < buffer_size else buf
            for update in updates:
                update(chunk)
    return {
        'size': size,
        'digests': dict((name, hasher.hexdigest()) for name, hasher in hashers),
        'seconds': round(time.monotonic() - started, 6),
    }


def parse_digest(value, algorithm=None):
    """Parse ``sha256:<hex>``, ``sha512:<hex>`` or bare hex into ``(algorithm, lowercase hex)``.

    A bare hex digest's algorithm comes from ``algorithm`` or from its length.
    """
    text = (value or '').strip()
    algo = algorithm
    if ':' in text:
        algo, text = text.split(':', 1)
        algo = algo.strip().lower().replace('-', '')
        text = text.strip()
    if not text or not _HEX_RE.match(text):
        raise VerifyError('digest %r is not hexadecimal' % value)
    if algo is None:
        for name, length in DIGEST_LENGTHS.items():
            if len(text) == length:
                algo = name
        if algo is None:
            raise VerifyError('digest %r has %d hex digits; expected 64 (sha256) or 128 (sha512)'
                              % (value, len(text)))
    if algo not in DIGEST_LENGTHS:
        raise VerifyError('digest algorithm %r is not supported (use sha256 or sha512)' % algo)
    if len(text) != DIGEST_LENGTHS[algo]:
        raise VerifyError('%s digest must have %d hex digits, got %d'
                          % (algo, DIGEST_LENGTHS[algo], len(text)))
    return algo, text.lower()
