# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Restore: check hashes and every member before anything is written, then extract only what differs."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import stat
import subprocess
import tempfile
import time

from ansible_collections.itsop.change.plugins.module_utils._backup.compare import bad_entry, compare_entry, relocate
from ansible_collections.itsop.change.plugins.module_utils._backup.digest import check_files
from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.extract import decompress_popen, extract
from ansible_collections.itsop.change.plugins.module_utils._backup.interrupt import TermGuard
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import CHUNK, DETAIL_LIMIT
from ansible_collections.itsop.change.plugins.module_utils._backup.manifest import iter_manifest
from ansible_collections.itsop.change.plugins.module_utils._backup.members import MemberScan, refused_error
from ansible_collections.itsop.change.plugins.module_utils._backup.pipes import pump, stop
from ansible_collections.itsop.change.plugins.module_utils._backup.record import open_record, record_key_bytes
from ansible_collections.itsop.change.plugins.module_utils._backup.store import ensure_private_dir
from ansible_collections.itsop.change.plugins.module_utils.backup_tarscan import ArchiveRefused, shown
from ansible_collections.itsop.change.plugins.module_utils._backup.tools import compression_of, which


def unsafe_name(name):
    if not name or name.startswith('/'):
        return 'absolute path'
    parts = name.split('/')
    if '..' in parts:
        return "contains '..'"
    return None


def scan_archive(archive_path, kind, manifest_path, root, allow_devices=False):
    """Check every member before anything is written; raise BackupError naming the first bad one.

    The stream is read by the same strict reader and member check verify uses (MemberScan): members
    must match the manifest one to one, stay inside ``root`` (no absolute names, no ``..``, nothing
    below a symlink member, no hard link to or through a symlink member) and be of an allowed type;
    any header two tar readers could read differently is refused. For an alternate root, the target
    on disk is checked too (_DiskCheck): no parent of a name, no directory and no hard-link target
    (nor any of its parents) may be a symlink that leads outside the root.
    """
    real_root = os.path.realpath(root)
    extra = _DiskCheck(root, real_root) if real_root != '/' else None
    scan = MemberScan(manifest_path, allow_devices=allow_devices, extra=extra)
    proc, raw = decompress_popen(archive_path, kind, subprocess.PIPE)
    stream = proc.stdout if proc else raw
    refused = None
    at_end = False
    try:
        pump(stream.fileno(), None, scan.feed)
        at_end = True
        if proc:
            proc.wait()  # the stream ended: the decompressor has exited, or is about to
        scan.close()
    except ArchiveRefused as exc:
        refused = exc
    finally:
        stream.close()
        if proc:
            stop(proc)
    # only when the stream ended by itself does the decompressor's exit status say something (a refusal
    # before the end closes its pipe: it then dies of SIGPIPE or is killed)
    if proc and at_end and proc.returncode != 0:
        raise BackupError('decompressing %s failed: %s' % (
            archive_path, proc.stderr.read().decode('utf-8', 'replace').strip() or 'exit %d' % proc.returncode))
    if refused is not None:
        raise refused_error(refused)
    return scan.count


class _DiskCheck(object):
    """Restore to an alternate root: refuse a member whose way into the root leaves it through a symlink.

    Checks every parent directory of the member's name (and the name itself for a directory, which GNU
    tar would otherwise follow and re-own) and, for a hard link, its target and all of the target's
    parents: none may be a symlink whose resolution (every link followed) ends outside the root.
    Results are cached per directory, so a tree costs one lstat per distinct directory.
    """

    def __init__(self, root, real_root):
        self.root = os.fsencode(root)
        self.real_root = os.fsencode(real_root)
        self.inside = self.real_root.rstrip(b'/') + b'/'
        self.checked = set()

    def __call__(self, member):
        self._walk(member.name, member.type == 'dir', member, False)
        if member.type == 'hardlink':
            self._walk(member.link, True, member, True)

    def _walk(self, name, inclusive, member, is_target):
        pos = name.find(b'/')
        while True:
            if pos == -1:
                if not inclusive:
                    return
                head = name
            else:
                head = name[:pos]
            if head not in self.checked:
                self.checked.add(head)
                full = self.root + b'/' + head
                if os.path.islink(full):
                    real = os.path.realpath(full)
                    if real != self.real_root and not real.startswith(self.inside):
                        what = 'archive member %r' % shown(member.name)
                        if is_target:
                            what = 'hard link %r -> %r' % (shown(member.name), shown(member.link))
                        raise ArchiveRefused('refusing %s: %s in the target is a symlink leading outside %s'
                                             % (what, shown(full), shown(self.root)), member.name)
            if pos == -1:
                return
            pos = name.find(b'/', pos + 1)


def restore_snapshot(snapshot_dir, root='/', allow_devices=False, check_mode=False, force=False,
                     record_key=None):
    """Restore to ``root``; returns (changed, result). Nothing is written in check mode.

    ``record_key``: the controller's record key; the record must then carry a valid signature.
    """
    started = time.time()
    record, authenticated = open_record(snapshot_dir, record_key_bytes(record_key))
    root = os.path.normpath(os.path.abspath(root))
    hashes = check_files(snapshot_dir, record)
    for key in ('archive', 'manifest'):
        if not hashes[key]['ok']:
            raise BackupError('%s %s sha256 mismatch: %s, recorded %s; refusing to restore' % (
                key, hashes[key]['path'], hashes[key]['sha256'], hashes[key]['expected_sha256']))
    archive_path = hashes['archive']['path']
    manifest_path = hashes['manifest']['path']
    kind = compression_of(record['archive']['name'])
    members = scan_archive(archive_path, kind, manifest_path, root, allow_devices=allow_devices)
    if not check_mode:
        ensure_private_dir(root)

    owner = os.geteuid() == 0
    created, modified = [], []
    counts = {'create': 0, 'modify': 0, 'unchanged': 0}
    sparse_info = record.get('sparse') if isinstance(record.get('sparse'), dict) else {}
    sparse_known = set(p for p in sparse_info.get('paths') or () if isinstance(p, str))
    sparse_todo = []
    # Only the members that differ are extracted, so files that already match the snapshot are
    # never touched (in use, or bind-mounted like /etc/hostname in a container).
    fd, names = tempfile.mkstemp(prefix='itsop-restore-', suffix='.names')
    try:
        with os.fdopen(fd, 'wb', buffering=CHUNK) as handle:
            entries = iter_manifest(manifest_path)
            next(entries)
            for entry in entries:
                try:
                    problems = compare_entry(entry, relocate(entry['path'], root), check_owner=owner,
                                             check_mtime=False)
                except (KeyError, TypeError, ValueError) as exc:
                    raise bad_entry(manifest_path, entry, exc) from None
                if sparse_known and entry['path'] in sparse_known and (problems or force):
                    sparse_todo.append(entry['path'])
                if not problems:
                    counts['unchanged'] += 1
                    continue
                handle.write((os.fsencode(entry['path'].lstrip('/')) or b'.') + b'\0')
                if problems == ['missing']:
                    counts['create'] += 1
                    if len(created) < DETAIL_LIMIT * 20:
                        created.append(entry['path'])
                else:
                    counts['modify'] += 1
                    if len(modified) < DETAIL_LIMIT * 20:
                        modified.append({'path': entry['path'], 'problems': problems})
        changed = bool(counts['create'] or counts['modify']) or force
        if changed and not check_mode:
            with TermGuard():
                # the stream passes the same member check again on its way to tar: the bytes extracted
                # are the bytes checked, even if the archive file changed since the scan
                extract(archive_path, kind, root, xattrs=record.get('xattrs', True),
                        names=None if force else names,
                        inspect=MemberScan(manifest_path, allow_devices=allow_devices))
    finally:
        os.unlink(names)
    result = {'snapshot_id': record['snapshot_id'], 'label': record['label'], 'snapshot_dir': snapshot_dir,
              'root': root, 'archive_sha256': record['archive']['sha256'], 'archive_ok': True,
              'members_checked': members, 'counts': counts, 'created': created, 'modified': modified,
              'restored': bool(changed and not check_mode),
              'record_authenticated': authenticated, 'record_signed': isinstance(record.get('signature'), dict),
              'duration': round(time.time() - started, 3)}
    sparse = sparse_info.get('count', 0)
    result['sparse_files'] = sparse
    result['sparse_restored'] = 0
    if sparse_todo and changed and not check_mode:
        result['sparse_restored'] = _dig_holes(sparse_todo, root)
    if sparse and changed:
        dense = len(sparse_todo) - result['sparse_restored']
        text = ('%d file(s) of the snapshot were sparse on the source (e.g. %s); '
                % (sparse, (sparse_info.get('paths') or ['?'])[0]))
        if check_mode:
            text += '%d of those would be restored, their holes punched again with fallocate --dig-holes' % (
                len(sparse_todo))
        else:
            text += '%d restored with their holes punched again (fallocate --dig-holes)' % result['sparse_restored']
            if dense:
                text += ', %d restored fully allocated (fallocate missing or refused)' % dense
        if sparse > len(sparse_known):
            text += '; the record names only the first %d, others are restored fully allocated' % len(sparse_known)
        result['notes'] = [text]
    before = ''.join('%s: %s\n' % (m['path'], '; '.join(m['problems'])) for m in modified)
    before += ''.join('%s: missing\n' % p for p in created)
    after = ''.join('%s: as in snapshot %s\n' % (p, record['snapshot_id'])
                    for p in [m['path'] for m in modified] + created)
    result['diff'] = {'before_header': root, 'after_header': 'snapshot %s' % record['snapshot_id'],
                      'before': before, 'after': after}
    return changed, result


def _dig_holes(paths, root):
    """Make restored sparse files sparse again (zero ranges deallocated, content and mtime unchanged)."""
    tool = which('fallocate')
    if not tool:
        return 0
    done = 0
    for path in paths:
        full = relocate(path, root)
        try:
            st = os.lstat(full)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        proc = subprocess.run([tool, '--dig-holes', full], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              check=False)
        try:
            os.utime(full, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        except OSError:
            pass
        if proc.returncode == 0:
            done += 1
    return done
