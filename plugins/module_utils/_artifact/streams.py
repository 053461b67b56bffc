# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bounded, forward-only readers the unpacker reads containers through.

Every read is bounded (no unbounded ``read()``, no header larger than ``MAX_HEADER_BYTES``), a
seek goes forward only, and ``zstd -dc`` runs as a killable reader with a deadline.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import subprocess
import threading
import time

from ansible_collections.itsop.change.plugins.module_utils._artifact.verdict import UnpackError


COPY_CHUNK = 1024 * 1024


# Largest single header read (tar pax/long-name headers, RPM header store): larger is refused.
MAX_HEADER_BYTES = 16 * 1024 * 1024


class Forward:
    """``tell``/``seek``/``seekable`` of a forward-only reader (``read`` and ``pos`` by the subclass):
    a seek ahead reads and drops, a seek back or from the end is refused."""

    label = 'stream'

    def tell(self):
        return self.pos

    def seek(self, offset, whence=0):
        if whence == 1:
            offset += self.pos
        elif whence != 0:
            raise UnpackError('%s: cannot seek from the end of a stream' % self.label)
        if offset < self.pos:
            raise UnpackError('%s: backwards seek in a stream' % self.label)
        while self.pos < offset:
            if not self.read(min(COPY_CHUNK, offset - self.pos)):
                break
        return self.pos

    def seekable(self):
        return False


class ForwardReader(Forward):
    """A forward-only, bounded file object over a decompressing (or plain) reader.

    ``tarfile`` in ``r:`` mode reads headers with one ``read(size)`` call: a request above
    ``MAX_HEADER_BYTES`` is refused instead of allocating it. Every byte read counts against
    ``budget`` (the unpacker's remaining byte allowance, checked by ``check``).
    """

    def __init__(self, raw, label, check):
        self.raw = raw
        self.pos = 0
        self.label = label
        self.check = check

    def read(self, size=-1):
        if size is None or size < 0:
            raise UnpackError('%s: unbounded read refused' % self.label)
        if size > MAX_HEADER_BYTES and size > COPY_CHUNK:
            raise UnpackError('%s: a single header of %d bytes is larger than %d bytes'
                              % (self.label, size, MAX_HEADER_BYTES))
        out = []
        want = size
        while want > 0:
            chunk = self.raw.read(min(want, COPY_CHUNK))
            if not chunk:
                break
            out.append(chunk)
            want -= len(chunk)
            self.check(0, len(chunk))
        data = b''.join(out)
        self.pos += len(data)
        return data


class ZstdReader:
    """``zstd -dc`` as a reader of the file ``fd`` from its current offset (killed on close)."""

    def __init__(self, fd, binary, deadline):
        self.proc = subprocess.Popen([binary, '-dcq', '--no-progress'], stdin=fd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, close_fds=True)
        delay = max(0.0, deadline - time.monotonic())
        self.timer = threading.Timer(delay, self._kill)
        self.timer.daemon = True
        self.timer.start()

    def _kill(self):
        try:
            self.proc.kill()
        except OSError:
            pass

    def read(self, size):
        return self.proc.stdout.read(size)

    def close(self, check=False):
        self.timer.cancel()
        if self.proc.poll() is None and not check:
            self._kill()
        try:
            self.proc.stdout.close()
        except OSError:
            pass
        err = self.proc.stderr.read(4096).decode('utf-8', 'replace').strip()
        self.proc.stderr.close()
        rc = self.proc.wait()
        if check and rc != 0:
            raise UnpackError('zstd failed (exit %d): %s' % (rc, err[-300:] or 'no message'))


class Chain(Forward):
    """``head`` bytes followed by ``rest`` (a reader), as one forward reader with ``tell``."""

    def __init__(self, head, rest):
        self.head = head
        self.rest = rest
        self.pos = 0

    def read(self, size=-1):
        if size is None or size < 0:
            raise UnpackError('unbounded read refused')
        out = b''
        if self.pos < len(self.head):
            out = self.head[self.pos:self.pos + size]
        if len(out) < size:
            out += self.rest.read(size - len(out))
        self.pos += len(out)
        return out


class Limited:
    """At most ``size`` bytes of ``reader``."""

    def __init__(self, reader, size):
        self.reader = reader
        self.left = size

    def read(self, size):
        if self.left <= 0:
            return b''
        data = self.reader.read(min(size, self.left))
        self.left -= len(data)
        return data
