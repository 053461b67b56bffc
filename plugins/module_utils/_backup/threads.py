# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Work beside the main stream: a background call, the page flusher and the hash that follows a growing file."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib
import os
import threading
import time

from ansible_collections.itsop.change.plugins.module_utils._backup.layout import CHUNK


class Flusher(object):
    """Push the archive's dirty pages to disk while it is being written, so the final fsync is short."""

    INTERVAL = 0.25

    def __init__(self, fd):
        self.fd = fd
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.daemon = True
        self.thread.start()

    def _run(self):
        while not self.done.wait(self.INTERVAL):
            try:
                os.fdatasync(self.fd)
            except OSError:
                return  # the final fsync reports any real error

    def stop(self):
        self.done.set()
        self.thread.join()


class FollowHash(object):
    """SHA-256 of a file while another process appends to it (read from the page cache as it grows).

    ``finish`` is called once the writer has exited, the rest is read up to the end; ``result``
    returns the digest of the whole file.
    """

    POLL = 0.02

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY)
        self.writer_done = threading.Event()
        self.worker = Background(self._run)

    def _run(self):
        digest = hashlib.sha256()
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        try:
            while True:
                done = self.writer_done.is_set()  # read before reading: a last read after it sees everything
                count = os.readv(self.fd, [buf])
                if count:
                    digest.update(view[:count])
                elif done:
                    return digest.hexdigest()
                else:
                    time.sleep(self.POLL)
        finally:
            os.close(self.fd)

    def finish(self):
        self.writer_done.set()

    def result(self):
        return self.worker.result()


class Background(object):
    """Run ``func(*args)`` in a thread; ``result()`` joins and returns its value or raises its error."""

    def __init__(self, func, *args):
        self.value = self.error = None
        self.thread = threading.Thread(target=self._run, args=(func, args))
        self.thread.daemon = True
        self.thread.start()

    def _run(self, func, args):
        try:
            self.value = func(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self.error = exc

    def result(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value
