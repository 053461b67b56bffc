# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Creating a snapshot: options, free space, the writer chosen, the build directory and the record."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

from ansible_collections.itsop.change.plugins.module_utils._backup.digest import sha256_file
from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError, CompressorGone
from ansible_collections.itsop.change.plugins.module_utils._backup.interrupt import TermGuard
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import (
    ARCHIVE_NAMES, CHUNK, DEFAULT_LEVEL, FORMAT_RECORD, INCOMPLETE_PREFIX, LIST_NAME, MANIFEST_NAME,
    PACKAGES_NAME, RECORD_NAME, FORMAT_MANIFEST, iso, utc_now, validate_label)
from ansible_collections.itsop.change.plugins.module_utils._backup.manifest import manifest_emitter
from ansible_collections.itsop.change.plugins.module_utils._backup.packages import package_state
from ansible_collections.itsop.change.plugins.module_utils._backup.pipes import PipeWriter, set_pipe_size
from ansible_collections.itsop.change.plugins.module_utils._backup.record import (
    open_record, record_key_bytes, sign_record, snapshot_dirs)
from ansible_collections.itsop.change.plugins.module_utils._backup.store import (
    ensure_private_dir, free_bytes, fsync_dir, write_json_atomic)
from ansible_collections.itsop.change.plugins.module_utils._backup.threads import Flusher, FollowHash
from ansible_collections.itsop.change.plugins.module_utils._backup.gnutar import GnuTarWriter
from ansible_collections.itsop.change.plugins.module_utils._backup.tarwriter import PythonTarWriter
from ansible_collections.itsop.change.plugins.module_utils._backup.tools import (
    HostTar, compressor_cmd, resolve_compression)
from ansible_collections.itsop.change.plugins.module_utils._backup.walk import (
    Excluder, Tree, estimate_archive_bytes, normalise_roots, scan_size)


def _options_of(record):
    return {'paths': record.get('paths'), 'exclude': record.get('exclude'),
            'compression': record.get('compression'), 'one_file_system': record.get('one_file_system')}


def snapshot_result(record, snapshot_dir):
    """The module return value for an existing snapshot record."""
    return {
        'snapshot_id': record['snapshot_id'],
        'label': record['label'],
        'snapshot_dir': snapshot_dir,
        'record_path': os.path.join(snapshot_dir, RECORD_NAME),
        'archive_path': os.path.join(snapshot_dir, record['archive']['name']),
        'archive_sha256': record['archive']['sha256'],
        'archive_size': record['archive']['size'],
        'compression': record['compression'],
        'manifest_path': os.path.join(snapshot_dir, record['manifest']['name']),
        'manifest_sha256': record['manifest']['sha256'],
        'package_state_path': (os.path.join(snapshot_dir, record['packages']['name'])
                               if record.get('packages') else None),
        'package_state_sha256': (record.get('packages') or {}).get('sha256'),
        'package_manager': (record.get('packages') or {}).get('manager'),
        'package_count': (record.get('packages') or {}).get('count', 0),
        'file_count': record['totals']['files'],
        'entry_count': record['totals']['entries'],
        'bytes': record['totals']['bytes'],
        'totals': record['totals'],
        'paths': record['paths'],
        'missing_paths': record.get('missing_paths', []),
        'created': record['created'],
        'duration': record['duration'],
        'warnings': record.get('warnings', []),
        'host': record.get('host'),
        'sparse_files': (record.get('sparse') or {}).get('count', 0),
        'record_signed': isinstance(record.get('signature'), dict),
    }


def create_snapshot(paths, dest, label, exclude=None, compression='auto', level=None,
                    packages=True, xattrs=True, one_file_system=False, ignore_missing=False,
                    space_check=True, space_margin_percent=10, space_margin_mb=64,
                    reuse_existing=False, do_fsync=True, check_mode=False, record_key=None, writer=None):
    """Create one snapshot; returns ``(changed, result)``. Raises BackupError on any failure.

    ``writer``: the tar writer (gnutar.GnuTarWriter or tarwriter.PythonTarWriter); by default
    select_writer() picks GNU tar when the host has it.

    ``record_key``: the controller's record key (str); the record is then signed (HMAC-SHA256) and a
    snapshot is only re-used when its record carries a valid signature.
    """
    started = time.time()
    validate_label(label)
    key = record_key_bytes(record_key)
    exclude = list(exclude or [])
    kind = resolve_compression(compression)
    if level is None:
        level = DEFAULT_LEVEL[kind]
    roots = normalise_roots(paths)
    if not roots:
        raise BackupError('paths is empty: nothing to back up')
    dest = os.path.normpath(os.path.abspath(dest))
    for root in roots:
        if dest == root or dest.startswith(root.rstrip('/') + '/'):
            exclude.append(dest)  # never back up the backup store into itself
    excluder = Excluder(exclude)
    missing = [r for r in roots if not os.path.lexists(r)]
    if missing and not ignore_missing:
        raise BackupError('paths do not exist: %s' % ', '.join(missing), missing_paths=missing)
    roots = [r for r in roots if r not in missing]
    if not roots:
        raise BackupError('none of the paths exist: %s' % ', '.join(missing), missing_paths=missing)

    wanted = {'paths': roots, 'exclude': sorted(set(exclude)), 'compression': kind,
              'one_file_system': one_file_system}
    reuse_skipped = []
    if reuse_existing:
        for record, path in reversed(snapshot_dirs(dest, label)):
            if _options_of(record) == wanted:
                if key is not None and not isinstance(record.get('signature'), dict):
                    reuse_skipped.append('snapshot %s not re-used: its record is not signed and a record key is '
                                         'configured' % record['snapshot_id'])
                    continue
                record, authenticated = open_record(path, key)  # a forged record fails here, loudly
                result = snapshot_result(record, path)
                result['reused'] = True
                result['record_authenticated'] = authenticated
                return False, result

    if writer is None:
        writer = select_writer(HostTar())
    tree = Tree(roots, excluder, one_file_system)
    space = None
    if check_mode or not writer.lists_names:
        counts = scan_size(roots, excluder, one_file_system)
        space = _space_check(counts, dest, space_check, space_margin_percent, space_margin_mb)
    if check_mode:
        return True, {'snapshot_id': None, 'label': label, 'paths': roots, 'missing_paths': missing,
                      'would_backup': counts, 'space': space, 'compression': kind,
                      'duration': round(time.time() - started, 3)}

    created = utc_now()
    snapshot_id = '%s-%s' % (created.strftime('%Y%m%dT%H%M%SZ'), uuid.uuid4().hex[:8])
    label_dir = os.path.join(dest, label)
    ensure_private_dir(dest)
    ensure_private_dir(label_dir)
    work = os.path.join(label_dir, INCOMPLETE_PREFIX + snapshot_id)
    final = os.path.join(label_dir, snapshot_id)
    os.mkdir(work, 0o700)
    warnings = list(reuse_skipped)
    try:
        with TermGuard():
            if writer.lists_names:
                # one walk: the name list GNU tar archives, and the counts for the space check
                counts = writer.write_list(os.path.join(work, LIST_NAME), tree, warnings)
                space = _space_check(counts, dest, space_check, space_margin_percent, space_margin_mb)
            record = _build(work, writer, tree, kind, level, packages, xattrs, do_fsync, label, snapshot_id,
                            created, started, wanted, missing, warnings, key)
            os.rename(work, final)
            if do_fsync:
                fsync_dir(label_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    result = snapshot_result(record, final)
    result['reused'] = False
    result['space'] = space
    result['record_authenticated'] = key is not None
    return True, result


def _space_check(counts, dest, space_check, margin_percent, margin_mb):
    """Free-space figures for ``counts``; raise BackupError when the snapshot would not fit."""
    needed = estimate_archive_bytes(counts)
    margin = int(needed * margin_percent / 100.0) + margin_mb * 1024 * 1024
    probe = dest
    while not os.path.isdir(probe):
        probe = os.path.dirname(probe)
    available = free_bytes(probe)
    space = {'estimated_bytes': needed, 'margin_bytes': margin, 'available_bytes': available,
             'filesystem_probe': probe}
    if space_check and available < needed + margin:
        raise BackupError(
            'not enough free space in %s for the snapshot: %d bytes available, need %d (estimate) + %d '
            '(margin)' % (probe, available, needed, margin), space=space, would_backup=counts)
    return space


def select_writer(tar):
    """The tar writer for this host: GNU tar's when ``tar`` (tools.HostTar) is GNU tar, else the Python one."""
    return GnuTarWriter(tar) if tar.gnu() else PythonTarWriter()


def _build(work, tar_writer, tree, kind, level, packages, xattrs, do_fsync, label, snapshot_id, created, started,
           wanted, missing, warnings, key=None):
    roots = tree.roots
    sparse = tree.sparse
    old_umask = os.umask(0o077)
    try:
        archive_name = ARCHIVE_NAMES[kind]
        archive_path = os.path.join(work, archive_name)
        manifest_path = os.path.join(work, MANIFEST_NAME)
        archive_fd = os.open(archive_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            cmd = compressor_cmd(kind, level)
            if cmd:
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=archive_fd,
                                        stderr=subprocess.PIPE)
                set_pipe_size(proc.stdin.fileno())
                writer = PipeWriter(proc.stdin.fileno(), proc)
            else:
                proc = None
                writer = PipeWriter(archive_fd, None)
            stderr_box = []
            reader = None
            flusher = Flusher(archive_fd) if do_fsync else None
            follower = FollowHash(archive_path)
            if proc:
                reader = threading.Thread(target=lambda: stderr_box.append(proc.stderr.read()))
                reader.daemon = True
                reader.start()
            try:
                with open(manifest_path, 'wb', buffering=CHUNK) as manifest:
                    header = {'format': FORMAT_MANIFEST, 'snapshot_id': snapshot_id, 'label': label,
                              'created': iso(created), 'paths': roots, 'host': socket.gethostname()}
                    emit, digest, size = manifest_emitter(manifest)
                    emit(header)
                    totals = tar_writer.stream(writer, emit, tree, xattrs, warnings)
                    emit({'end': True, 'totals': totals})
                    manifest_sha, manifest_size = digest.hexdigest(), size[0]
                    manifest.flush()
                    if do_fsync:
                        os.fsync(manifest.fileno())
                writer.flush()
                if proc:
                    proc.stdin.close()
                    rc = proc.wait()
                    reader.join()
                    if rc != 0:
                        raise BackupError('the compressor %s failed (exit %d) writing %s: %s' % (
                            kind, rc, archive_path,
                            (b''.join(stderr_box)).decode('utf-8', 'replace').strip()))
            except CompressorGone as gone:
                if not proc:
                    raise BackupError('writing %s failed: %s' % (archive_path, gone.args[0])) from None
                if proc:
                    proc.stdin.close()
                    proc.wait()
                    reader.join()
                raise BackupError('the compressor %s stopped while writing %s: %s' % (
                    kind, archive_path, (b''.join(stderr_box)).decode('utf-8', 'replace').strip()
                    or 'broken pipe')) from None
            except BaseException:
                if proc and proc.poll() is None:
                    proc.kill()
                    proc.wait()
                raise
            finally:
                if flusher:
                    flusher.stop()
                follower.finish()  # the writer (compressor or this process) has stopped writing
            if do_fsync:
                os.fsync(archive_fd)
            archive_sha = follower.result()
        finally:
            os.close(archive_fd)
        tar_writer.close()
        archive_size = os.path.getsize(archive_path)

        pkg_entry = None
        if packages:
            manager, pkgs = package_state()
            pkg_doc = {'format': 'itsop-package-state/1', 'snapshot_id': snapshot_id,
                       'manager': manager, 'count': len(pkgs), 'packages': pkgs}
            pkg_path = os.path.join(work, PACKAGES_NAME)
            write_json_atomic(pkg_path, pkg_doc, do_fsync)
            pkg_entry = {'name': PACKAGES_NAME, 'sha256': sha256_file(pkg_path),
                         'manager': manager, 'count': len(pkgs)}
            if manager is None:
                warnings.append('no dpkg-query or rpm found: package state is empty')

        if sparse.count:
            warnings.append('%d sparse file(s) (e.g. %s) are archived and restored fully allocated: their holes '
                            'become zeros on disk after a restore' % (sparse.count, sparse.paths[0]))
        finished = utc_now()
        record = {
            'format': FORMAT_RECORD,
            'snapshot_id': snapshot_id,
            'label': label,
            'host': socket.gethostname(),
            'created': iso(created),
            'created_epoch': created.timestamp(),
            'finished': iso(finished),
            'duration': round(time.time() - started, 3),
            'compression': kind,
            'compression_level': level,
            'paths': roots,
            'exclude': wanted['exclude'],
            'one_file_system': tree.one_file_system,
            'missing_paths': missing,
            'archive': {'name': archive_name, 'sha256': archive_sha, 'size': archive_size},
            'manifest': {'name': MANIFEST_NAME, 'sha256': manifest_sha, 'size': manifest_size,
                         'entries': totals['entries']},
            'packages': pkg_entry,
            'totals': totals,
            'warnings': warnings,
            'xattrs': bool(xattrs),
            'sparse': {'count': sparse.count, 'paths': sparse.paths},
        }
        if key is not None:
            sign_record(record, key)
        write_json_atomic(os.path.join(work, RECORD_NAME), record, do_fsync)
        if do_fsync:
            fsync_dir(work)
        return record
    finally:
        os.umask(old_umask)
