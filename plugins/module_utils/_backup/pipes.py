# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Moving bytes between processes: the buffered pipe writer, pipe sizes, exact reads, the pump and stopping children."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError, CompressorGone
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import CHUNK


class PipeWriter(object):
    """Buffered writer onto the compressor's stdin that reports the compressor's failure."""

    def __init__(self, fd, proc):
        self.fd = fd
        self.proc = proc
        self.buf = bytearray()

    def write(self, data):
        self.buf += data
        if len(self.buf) >= CHUNK:
            self.flush()

    def write_large(self, view):
        if self.buf:
            self.flush()
        self._write_all(view)

    def flush(self):
        if self.buf:
            self._write_all(memoryview(self.buf))
            self.buf = bytearray()

    def _write_all(self, view):
        try:
            while len(view):
                count = os.write(self.fd, view)
                view = view[count:]
        except (BrokenPipeError, OSError) as exc:
            raise CompressorGone(exc) from None


def read_exact(fd, view):
    got = 0
    while got < len(view):
        count = os.readv(fd, [view[got:]])
        if not count:
            raise BackupError('tar output ended inside data it had already written')
        got += count
    return got


def set_pipe_size(fd, size=CHUNK):
    try:
        import fcntl
        fcntl.fcntl(fd, getattr(fcntl, 'F_SETPIPE_SZ', 1031), size)
    except (ImportError, OSError, ValueError):
        pass  # best effort: a larger pipe only saves context switches


def pump(src_fd, dst_fd, feed):
    """Read ``src_fd`` to its end; every chunk is first checked by ``feed``, then written to ``dst_fd``.

    The check comes first, so a member that is refused never reaches the process behind ``dst_fd``.
    """
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        count = os.readv(src_fd, [buf])
        if not count:
            return
        chunk = view[:count]
        feed(chunk)
        if dst_fd is not None:
            try:
                while len(chunk):
                    chunk = chunk[os.write(dst_fd, chunk):]
            except OSError as exc:  # EPIPE: tar stopped early; its exit status and message tell why
                raise CompressorGone(exc) from None


def stop(*procs):
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.kill()
    for proc in procs:
        if proc is not None:
            proc.wait()
