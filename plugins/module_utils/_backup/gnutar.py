# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The GNU tar writer: one walk writes the name list, GNU tar archives it, its stream is teed and parsed."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import subprocess
import tempfile

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import CHUNK
from ansible_collections.itsop.change.plugins.module_utils._backup.ostee import kernel_tee
from ansible_collections.itsop.change.plugins.module_utils._backup.pipes import read_exact, set_pipe_size
from ansible_collections.itsop.change.plugins.module_utils._backup.teeparse import TarTee
from ansible_collections.itsop.change.plugins.module_utils._backup.walk import count_entry, entry_type, new_counts

BENIGN_TAR = ('file changed as we read it', 'No such file or directory', 'file removed before we read it', 'shrank',
              'socket ignored')


def tar_messages(stderr):
    """Split tar's diagnostics into (errors, warnings), names given back their leading '/'."""
    errors, warnings = [], []
    for raw in stderr.decode('utf-8', 'replace').splitlines():
        line = raw.strip()
        prog, sep, text = line.partition(': ')
        if not sep or os.path.basename(prog) != 'tar' or text.startswith('Exiting with failure status'):
            continue
        head, sep, rest = text.partition(': ')
        if sep and not head.startswith('/') and os.path.lexists('/' + head):
            text = '/%s: %s' % (head, rest)
        (warnings if any(b in text for b in BENIGN_TAR) else errors).append(text)
    return errors, warnings


class GnuTarWriter(object):
    """GNU tar archives the names one walk listed; its stream is teed to the compressor and parsed for the manifest.

    ``tar``: the host's tar (tools.HostTar, known to be GNU tar). ``load_tee``: returns the kernel copy
    function (ostee.kernel_tee, the default) or None; asked once, when the stream goes to a compressor.
    """

    lists_names = True

    def __init__(self, tar, load_tee=kernel_tee):
        self.tar = tar
        self.load_tee = load_tee
        self.list_path = None
        self.multi = None

    def write_list(self, list_path, tree, warnings):
        """Walk once: write the NUL separated name list for tar and return the counts (space check)."""
        counts = new_counts()
        multi = set()
        sparse = tree.sparse
        try:
            handle = open(list_path, 'wb', buffering=CHUNK)
        except OSError as exc:
            raise BackupError('cannot write %s: %s' % (list_path, exc.strerror or exc)) from None
        try:
            for path, st in tree.walk():
                kind = entry_type(st.st_mode)
                if kind in ('socket', 'unknown'):
                    warnings.append('skipped %s %s (tar cannot archive it)' % (kind, path))
                    continue
                try:
                    handle.write((os.fsencode(path.lstrip('/')) or b'.') + b'\0')
                except OSError as exc:
                    raise BackupError('cannot write %s: %s' % (list_path, exc.strerror or exc)) from None
                count_entry(counts, kind, st)
                if kind == 'file':
                    if st.st_nlink > 1:
                        multi.add(path)
                    if st.st_size >= st.st_blocks * 512 + 4096:  # at least a page not allocated: a hole
                        sparse.add(path)
            handle.flush()
        except OSError as exc:
            raise BackupError('cannot write %s: %s' % (list_path, exc.strerror or exc)) from None
        finally:
            try:
                handle.close()
            except OSError:
                pass
        self.list_path = list_path
        self.multi = multi
        return counts

    def stream(self, writer, emit, tree, xattrs, warnings):
        """Run GNU tar on the name list; tee its stream into ``writer`` while building the manifest. Returns totals."""
        tee = TarTee(emit, self.multi)
        env = dict(os.environ, LC_ALL='C')
        err_file = tempfile.TemporaryFile()
        proc = subprocess.Popen(self.tar.create_cmd(self.list_path, xattrs), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err_file, env=env)
        try:
            fd = proc.stdout.fileno()
            set_pipe_size(fd)
            buf = bytearray(CHUNK)  # one buffer for the whole stream: no allocation (and page faults) per read
            view = memoryview(buf)
            dup = self.load_tee() if writer.proc else None
            writer.flush()
            while True:
                if dup:
                    count = dup(fd, writer.fd)
                    if count is None:
                        dup = None  # refused before anything was copied: copy by hand from here on
                        continue
                    if count:
                        count = read_exact(fd, view[:count])
                else:
                    count = os.readv(fd, [buf])
                    if count:
                        writer.write_large(view[:count])  # written out in full before the buffer is reused
                if not count:
                    break
                tee.feed(view[:count])
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        err_file.seek(0)
        errors, tar_warnings = tar_messages(err_file.read())
        err_file.close()
        warnings.extend(tar_warnings)
        if errors or (rc not in (0, 1) and not tar_warnings):
            raise BackupError('cannot archive: %s' % ('; '.join(errors[:10]) or 'tar exited with status %d' % rc))
        if not tee.ended:
            raise BackupError('tar stopped before the end of the archive (exit %d)' % rc)
        return tee.totals

    def close(self):
        """Remove the name list (the snapshot keeps only archive, manifest, package state and record)."""
        if self.list_path:
            os.unlink(self.list_path)
