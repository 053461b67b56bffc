# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify: re-hash the snapshot files while a test extraction runs, then compare the tree with the manifest."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import shutil
import stat
import tempfile
import threading
import time

from ansible_collections.itsop.change.plugins.module_utils._backup.compare import bad_entry, compare_entry
from ansible_collections.itsop.change.plugins.module_utils._backup.digest import check_files
from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.extract import extract
from ansible_collections.itsop.change.plugins.module_utils._backup.interrupt import TermGuard
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import (
    DETAIL_LIMIT, FORMAT_VERIFY, VERIFY_LIMIT, VERIFY_NAME, iso, utc_now)
from ansible_collections.itsop.change.plugins.module_utils._backup.manifest import iter_manifest
from ansible_collections.itsop.change.plugins.module_utils._backup.members import MemberScan
from ansible_collections.itsop.change.plugins.module_utils._backup.record import open_record, record_key_bytes
from ansible_collections.itsop.change.plugins.module_utils._backup.store import (
    free_bytes, read_store_json, write_json_atomic)
from ansible_collections.itsop.change.plugins.module_utils._backup.threads import Background
from ansible_collections.itsop.change.plugins.module_utils._backup.tools import compression_of
from ansible_collections.itsop.change.plugins.module_utils._backup.walk import Excluder, path_key, walk


def _walk_extracted(top, roots):
    """Every entry under ``top`` in manifest order, as the absolute path it would restore to."""
    ancestors = set()
    for root in roots:
        parts = [p for p in root.split('/') if p]
        for i in range(1, len(parts)):
            ancestors.add('/' + '/'.join(parts[:i]))
    cut = len(top.rstrip('/'))
    for path, st in walk([top], Excluder([])):
        if path == top:
            continue
        original = path[cut:]
        yield original, st, original in ancestors and stat.S_ISDIR(st.st_mode)


def verify_snapshot(snapshot_dir, tmpdir=None, keep_temp=False, record_result=True,
                    check_mode=False, space_check=True, record_key=None):
    """Re-hash, test-extract into a temporary directory and compare every entry with the manifest.

    ``record_key``: the controller's record key; a record without a valid signature then fails (raises).
    """
    started = time.time()
    record, authenticated = open_record(snapshot_dir, record_key_bytes(record_key))
    result = {'snapshot_id': record['snapshot_id'], 'label': record['label'], 'snapshot_dir': snapshot_dir,
              'archive_sha256': record['archive']['sha256'], 'started': iso(utc_now()),
              'archive_ok': False, 'manifest_ok': False, 'packages_ok': None, 'extract_ok': False,
              'entries_expected': record['totals']['entries'], 'entries_compared': 0,
              'files_hashed': 0, 'mismatches': [], 'mismatch_count': 0, 'missing_count': 0,
              'extra_count': 0, 'owner_checked': os.geteuid() == 0, 'members_checked': 0,
              'record_authenticated': authenticated, 'record_signed': isinstance(record.get('signature'), dict)}
    failures = []
    checker = _FileCheck(snapshot_dir, record)  # re-hashes while the test extraction runs
    try:
        _restore_test(snapshot_dir, record, tmpdir, keep_temp, result, failures, space_check, checker)
    finally:
        failures[:0] = checker.wait(result)
    result['verdict'] = 'passed' if not failures else 'failed'
    result['passed'] = not failures
    result['failures'] = failures
    result['finished'] = iso(utc_now())
    result['duration'] = round(time.time() - started, 3)
    changed = False
    if record_result and not check_mode:
        doc = {'format': FORMAT_VERIFY, 'snapshot_id': record['snapshot_id'],
               'archive_sha256': record['archive']['sha256'], 'verdict': result['verdict'],
               'verified': result['finished'], 'entries_compared': result['entries_compared'],
               'failures': failures[:DETAIL_LIMIT]}
        path = os.path.join(snapshot_dir, VERIFY_NAME)
        old = None
        if os.path.lexists(path):
            try:
                old = read_store_json(path, 'verify record', VERIFY_LIMIT)
            except BackupError:
                old = None  # rewritten below
        same = (isinstance(old, dict) and old.get('verdict') == doc['verdict']
                and old.get('archive_sha256') == doc['archive_sha256'])
        if not same:
            write_json_atomic(path, doc)
            changed = True
        result['record_path'] = path
    return changed, result


class _FileCheck(object):
    """``check_files`` in a thread; ``wait`` fills the result's hash fields and returns the failures."""

    def __init__(self, snapshot_dir, record):
        self.lock = threading.Lock()
        self.procs = []
        self.stopped = False
        self.failures = None
        self.task = Background(self._check, snapshot_dir, record)

    def _check(self, snapshot_dir, record):
        try:
            hashes = check_files(snapshot_dir, record)
        except BaseException:
            self._stop()
            raise
        if not all(value['ok'] for value in hashes.values()):
            self._stop()
        return hashes

    def track(self, proc):
        """Register a process of the test extraction; it is killed as soon as a hash does not match."""
        with self.lock:
            self.procs.append(proc)
            if self.stopped:
                proc.kill()

    def _stop(self):
        with self.lock:
            self.stopped = True
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()

    def wait(self, result):
        if self.failures is None:
            failures = []
            try:
                hashes = self.task.result()  # anything but these (a bug) propagates: never a pass
            except BackupError as exc:
                hashes = {}
                failures.append(exc.msg)
            except (OSError, IOError) as exc:
                hashes = {}
                failures.append('re-hashing the snapshot files failed: %s' % exc)
            result['hashes'] = hashes
            result['archive_ok'] = bool(hashes.get('archive', {}).get('ok'))
            result['manifest_ok'] = bool(hashes.get('manifest', {}).get('ok'))
            if 'packages' in hashes:
                result['packages_ok'] = hashes['packages']['ok']
            for key, value in sorted(hashes.items()):
                if not value['ok']:
                    failures.append('%s %s sha256 mismatch: %s, recorded %s' % (
                        key, value['path'], value['sha256'], value['expected_sha256']))
            self.failures = failures
        return self.failures


def _restore_test(snapshot_dir, record, tmpdir, keep_temp, result, failures, space_check, checker):
    """Extract into a temporary directory and compare it with the manifest, once ``checker`` passed.

    The extraction runs while ``checker`` re-hashes archive and manifest; when a hash does not match,
    the extraction's outcome is discarded (the hash failure is the verdict) and nothing is compared.
    """
    manifest_path = os.path.join(snapshot_dir, record['manifest']['name'])
    archive_path = os.path.join(snapshot_dir, record['archive']['name'])
    need = record['totals']['bytes'] + record['totals']['entries'] * 4096
    base = tmpdir or _fast_tmp(need) or snapshot_dir
    result['temp_base'] = base
    if space_check:
        if free_bytes(base) < need:
            failures.append('not enough free space in %s for the restore test: %d bytes available, need %d'
                            % (base, free_bytes(base), need))
            return
    temp = tempfile.mkdtemp(prefix='.itsop-verify-', dir=base)
    result['temp_dir'] = temp if keep_temp else None
    try:
        with TermGuard():
            extract_error = None
            try:
                # the same member check as a restore's (MemberScan), on the bytes tar extracts
                scan = MemberScan(manifest_path, allow_devices=True)
                extract(archive_path, compression_of(record['archive']['name']), temp,
                        xattrs=record.get('xattrs', True), track=checker.track, inspect=scan)
                result['members_checked'] = scan.count
            except BackupError as exc:
                extract_error = exc.msg
            if checker.wait(result):
                return
            if extract_error:
                failures.append(extract_error)
                return
            result['extract_ok'] = True
            _compare_tree(manifest_path, temp, result, failures)
    finally:
        if not keep_temp:
            shutil.rmtree(temp, ignore_errors=True)


def _mem_available():
    try:
        with open('/proc/meminfo') as handle:
            for line in handle:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, IOError, ValueError):
        pass
    return 0


def _fast_tmp(need):
    """The shared-memory tmpfs when it is writable and the tree is small next to free memory, else None.

    Creating many small files is far cheaper on tmpfs than on most disks; the extraction is the same
    GNU tar run either way. Only used when the tree needs under a quarter of the available memory.
    """
    shm = os.path.join('/dev', 'shm')
    if not (os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK)):
        return None
    try:
        if free_bytes(shm) < need * 1.2 or need * 4 > _mem_available():
            return None
    except OSError:
        return None
    return shm


def _compare_tree(manifest_path, temp, result, failures):
    owner = result['owner_checked']
    details = result['mismatches']
    try:
        entries = iter_manifest(manifest_path)
        header = next(entries)
        disk = _walk_extracted(temp, header.get('paths') or [])
        cur = _next_disk(disk)
        for entry in entries:
            path = entry['path']
            if cur is not None and cur[0] != path:  # the common case (same order) needs no sort keys
                key = path_key(path)
                while cur is not None and cur[0] != path and path_key(cur[0]) < key:
                    if not cur[2]:
                        result['extra_count'] += 1
                        if len(details) < DETAIL_LIMIT:
                            details.append({'path': cur[0], 'problems': ['not in the manifest']})
                    cur = _next_disk(disk)
            if cur is None or cur[0] != path:
                result['missing_count'] += 1
                if len(details) < DETAIL_LIMIT:
                    details.append({'path': path, 'problems': ['missing after extraction']})
                continue
            is_file = entry['type'] in ('file', 'hardlink')
            try:
                problems = compare_entry(entry, temp + path, check_owner=owner, check_mtime=is_file, st=cur[1])
            except (KeyError, TypeError, ValueError) as exc:
                raise bad_entry(manifest_path, entry, exc) from None
            result['entries_compared'] += 1
            if is_file:
                result['files_hashed'] += 1
            if problems:
                result['mismatch_count'] += 1
                if len(details) < DETAIL_LIMIT:
                    details.append({'path': entry['path'], 'problems': problems})
            cur = _next_disk(disk)
        while cur is not None:
            if not cur[2]:
                result['extra_count'] += 1
                if len(details) < DETAIL_LIMIT:
                    details.append({'path': cur[0], 'problems': ['not in the manifest']})
            cur = _next_disk(disk)
    except BackupError as exc:
        failures.append(exc.msg)
        return
    if result['entries_compared'] != result['entries_expected'] and not result['missing_count']:
        failures.append('manifest lists %d entries, the record says %d' % (
            result['entries_compared'], result['entries_expected']))
    for key, text in (('missing_count', 'entries missing after extraction'),
                      ('mismatch_count', 'entries differ from the manifest'),
                      ('extra_count', 'extracted entries not in the manifest')):
        if result[key]:
            failures.append('%d %s' % (result[key], text))


def _next_disk(iterator):
    return next(iterator, None)
