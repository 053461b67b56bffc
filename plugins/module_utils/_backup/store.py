# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Files of the backup store: private directories, atomic JSON, bounded reads of what is read back."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import os
import tempfile

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils.safe_input import (
    InputError, load_json, open_regular_file, read_regular_file)


def open_store_file(path, what, limit=None):
    """Open a file read back from the backup store: ``(fd, fstat)`` of a regular file of at most ``limit`` bytes.

    safe_input.open_regular_file for files that are streamed instead of read at once (archive, manifest):
    checked with ``stat`` before it is opened (a FIFO or device in the store is never opened), opened
    ``O_NONBLOCK`` and checked again with ``fstat`` on the descriptor (the file read is the file checked).
    """
    try:
        fd, st = open_regular_file(path, limit=limit, what=what)
    except InputError as exc:
        raise BackupError(str(exc), path=path) from None
    try:
        import fcntl
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)  # handed to zstd
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_store_json(path, what, limit):
    """A small JSON document from the store (record, verify verdict): regular file, size limit, no duplicate keys."""
    try:
        return load_json(read_regular_file(path, limit=limit, what=what).decode('utf-8'), '%s %s' % (what, path))
    except InputError as exc:
        raise BackupError(str(exc), path=path) from None
    except UnicodeDecodeError as exc:
        raise BackupError('%s %s is not UTF-8 (byte %d)' % (what, path, exc.start), path=path) from None


def fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def ensure_private_dir(path, check_mode=False):
    """Create ``path`` (and parents) with mode 0700; return True when something was created."""
    if os.path.isdir(path):
        return False
    if check_mode:
        return True
    os.makedirs(path, 0o700)
    os.chmod(path, 0o700)
    return True


def write_json_atomic(path, data, do_fsync=True):
    """Write ``data`` as JSON to ``path`` via a temporary file in the same directory (0600)."""
    directory = os.path.dirname(path) or '.'
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=directory)
    try:
        with os.fdopen(fd, 'w') as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write('\n')
            handle.flush()
            if do_fsync:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
