# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SIGTERM/SIGHUP turned into an exception while a snapshot, verify or restore runs, so cleanup code runs."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import signal
import threading


class Interrupted(BaseException):
    pass


class TermGuard(object):
    """Turn SIGTERM/SIGHUP into an exception so cleanup code runs (main thread only)."""

    def __init__(self):
        self.old = {}

    def _handler(self, signum, frame):
        raise Interrupted('interrupted by signal %d' % signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self.old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        return False
