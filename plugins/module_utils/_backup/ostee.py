# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Linux tee(2) through ctypes: copy pipe to pipe inside the kernel."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import errno
import os

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import CompressorGone
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import CHUNK


def kernel_tee():
    """Linux tee(2) through ctypes: copy pipe to pipe inside the kernel, or None where it is missing.

    Loaded on each call: a writer asks once per snapshot and keeps the answer.

    The function returned gives the byte count (0 at the end of the input), None when the kernel
    refuses the call (the caller then copies by itself), and raises CompressorGone on a broken pipe.
    """
    func = None
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        raw = libc.tee
        raw.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint]
        raw.restype = ctypes.c_ssize_t

        def func(src, dst):
            while True:
                count = raw(src, dst, CHUNK, 0)
                if count >= 0:
                    return count
                err = ctypes.get_errno()
                if err in (errno.ENOSYS, errno.EINVAL, errno.EPERM):
                    return None  # not available here (old kernel, seccomp filter)
                if err != errno.EINTR:
                    raise CompressorGone(OSError(err, os.strerror(err)))
    except (ImportError, OSError, AttributeError):
        func = None
    return func
