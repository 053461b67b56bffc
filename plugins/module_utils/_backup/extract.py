# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Extraction: the archive through its decompressor and the member check into GNU tar -x."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import signal
import subprocess
import tempfile

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError, CompressorGone
from ansible_collections.itsop.change.plugins.module_utils._backup.pipes import pump, stop
from ansible_collections.itsop.change.plugins.module_utils._backup.store import open_store_file
from ansible_collections.itsop.change.plugins.module_utils.backup_tarscan import ArchiveRefused
from ansible_collections.itsop.change.plugins.module_utils._backup.members import refused_error
from ansible_collections.itsop.change.plugins.module_utils._backup.tools import HostTar, decompressor_cmd


def decompress_popen(archive_path, kind, stdout):
    cmd = decompressor_cmd(kind)
    fd, _st = open_store_file(archive_path, 'archive')
    handle = os.fdopen(fd, 'rb')
    if not cmd:
        return None, handle
    try:
        proc = subprocess.Popen(cmd, stdin=handle, stdout=stdout, stderr=subprocess.PIPE)
    finally:
        handle.close()
    return proc, None


def extract(archive_path, kind, root, xattrs=True, names=None, track=None, inspect=None, tar=None):
    """Pipe the archive through the decompressor into GNU tar -x; raise BackupError on failure.

    ``names``: a file of NUL separated member names; only those members are extracted.
    ``track``: called with each process started (so another thread can stop the extraction).
    ``inspect``: a MemberScan; the stream passes through it on its way to tar, and tar never gets a
    chunk that holds a refused member (verify: the bytes checked are the bytes extracted).
    GNU tar runs with ``LC_ALL=C`` so it writes names as the archive's bytes (no charset conversion).
    ``tar``: the host's tar (tools.HostTar); a new one when not given.
    """
    is_root = os.geteuid() == 0
    cmd = (tar or HostTar()).extract_cmd(root, xattrs, same_owner=is_root)
    if names:
        cmd += ['--no-recursion', '--null', '--no-unquote', '--verbatim-files-from', '-T', names]
    err_file = tempfile.TemporaryFile()
    tar = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=err_file, stderr=err_file,
                           env=dict(os.environ, LC_ALL='C'))
    dec = None
    refused = None
    try:
        if track:
            track(tar)
        if inspect is None:
            dec, raw = decompress_popen(archive_path, kind, tar.stdin)
        else:
            dec, raw = decompress_popen(archive_path, kind, subprocess.PIPE)
        if dec and track:
            track(dec)
        src = raw if raw is not None else (dec.stdout if inspect is not None else None)
        at_end = False
        if src is not None:
            with src:
                try:
                    pump(src.fileno(), tar.stdin.fileno(), inspect.feed if inspect is not None else _ignore)
                    at_end = True
                    if inspect is not None:
                        inspect.close()
                except ArchiveRefused as exc:
                    refused = exc
                except CompressorGone:
                    pass  # tar stopped early; its exit status and message tell why
        if refused is not None:
            stop(tar)
            if dec is not None and at_end:  # the stream ended early: the decompressor's error says why
                dec.wait()
                if dec.returncode != 0:
                    raise BackupError('decompressing %s failed: %s' % (
                        archive_path, dec.stderr.read().decode('utf-8', 'replace').strip() or 'exit %d'
                        % dec.returncode))
            stop(dec)
            raise refused_error(refused)
        tar.stdin.close()
        tar.stdin = None
        tar.wait()
        dec_err = b''
        if dec:
            dec_err = dec.stderr.read()
            dec.wait()
    except BaseException:
        stop(tar, dec)
        err_file.close()
        raise
    err_file.seek(0)
    tar_err = err_file.read()
    err_file.close()
    tar_first = tar.returncode != 0 and dec is not None and dec.returncode == -signal.SIGPIPE
    if dec and dec.returncode != 0 and not tar_first:  # (a decompressor killed by SIGPIPE: tar stopped first)
        raise BackupError('decompressing %s failed: %s' % (archive_path, dec_err.decode('utf-8', 'replace').strip()))
    if tar.returncode != 0:
        raise BackupError('tar could not extract %s into %s: %s' % (
            archive_path, root, tar_err.decode('utf-8', 'replace').strip()[-2000:]))


def _ignore(_chunk):
    return None
