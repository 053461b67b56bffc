# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host's programs: compressors, decompressors and tar (whether it is GNU tar, whether it knows xattrs)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import subprocess

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import ARCHIVE_NAMES


def which(name):
    for directory in [*os.environ.get('PATH', '/usr/bin:/bin').split(os.pathsep), '/usr/bin', '/bin']:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def resolve_compression(requested):
    if requested == 'auto':
        return 'zstd' if which('zstd') else 'gzip'
    if requested == 'zstd' and not which('zstd'):
        raise BackupError("compression 'zstd' requested but the zstd command is not installed; "
                          "use compression=auto or gzip")
    return requested


def compressor_cmd(kind, level):
    if kind == 'zstd':
        return [which('zstd'), '-q', '-T0', '-%d' % level, '-c']
    if kind == 'gzip':
        tool = which('pigz') or which('gzip')
        if not tool:
            raise BackupError('neither pigz nor gzip is installed on the host')
        return [tool, '-%d' % level, '-c']
    return None


def decompressor_cmd(kind):
    if kind == 'zstd':
        tool = which('zstd')
        if not tool:
            raise BackupError('the archive is zstd-compressed but the zstd command is not installed')
        return [tool, '-q', '-d', '-c']
    if kind == 'gzip':
        return [which('pigz') or which('gzip'), '-d', '-c']
    return None


def compression_of(archive_name):
    for kind, name in ARCHIVE_NAMES.items():
        if archive_name == name:
            return kind
    raise BackupError('unknown archive name %r in snapshot record' % (archive_name,))


class HostTar(object):
    """The host's tar: whether it is GNU tar and whether it knows ``--xattrs``, each asked once per instance.

    One instance serves one module run (the answers are held here, never in module globals).
    """

    def __init__(self, path=None):
        self.path = path or which('tar')
        self._gnu = self._xattrs = None

    def gnu(self):
        """Path of GNU tar, or None when the host's tar is not GNU tar."""
        if self._gnu is None:
            found = ''
            if self.path:
                try:
                    out = subprocess.run([self.path, '--version'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         check=False).stdout
                except OSError:
                    out = b''
                if b'GNU tar' in out:
                    found = self.path
            self._gnu = found
        return self._gnu or None

    def has_xattrs(self):
        if self._xattrs is None:
            try:
                out = subprocess.run([self.path or 'tar', '--help'], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, check=False).stdout
            except OSError:
                out = b''
            self._xattrs = b'--xattrs' in out
        return self._xattrs

    def create_cmd(self, list_path, xattrs=True):
        """GNU tar writing a POSIX archive of exactly the names in ``list_path`` (NUL separated, relative to /)."""
        cmd = [self.gnu(), '-c', '-f', '-', '-C', '/', '--format=posix',
               '--pax-option=delete=atime,delete=ctime,delete=mtime', '--no-recursion', '--null',
               '--no-unquote', '--verbatim-files-from']
        if xattrs and self.has_xattrs():
            cmd += ['--xattrs', '--xattrs-include=*']
        return [*cmd, '-T', list_path]

    def extract_cmd(self, root, xattrs=True, same_owner=True):
        cmd = [self.path or 'tar', '-x', '-f', '-', '-C', root, '--numeric-owner', '--preserve-permissions']
        if same_owner:
            cmd.append('--same-owner')
        else:
            cmd.append('--no-same-owner')
        if xattrs and self.has_xattrs():
            cmd += ['--xattrs', '--xattrs-include=*']
        return cmd
