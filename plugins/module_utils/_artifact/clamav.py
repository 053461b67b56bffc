# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Malware scanning with ClamAV (``clamscan`` or ``clamdscan``), failing closed.

A scanner that is missing, errs, has an empty database or skips a file beyond its limits gives
a failure with a reason, never ``clean``.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time

from ansible_collections.itsop.change.plugins.module_utils._artifact.digest import hash_file
from ansible_collections.itsop.change.plugins.module_utils._artifact.process import run_command
from ansible_collections.itsop.change.plugins.module_utils._artifact.verdict import (
    VERDICT_FAIL,
    VERDICT_OK,
    VerifyError,
)
from ansible_collections.itsop.change.plugins.module_utils.safe_input import InputError


# ClamAV database file suffixes (official and custom signature formats).
CLAMAV_DB_SUFFIXES = (
    '.cvd', '.cld', '.cud', '.ndb', '.ndu', '.hdb', '.hdu', '.hsb', '.hsu', '.mdb', '.mdu',
    '.msb', '.msu', '.ldb', '.ldu', '.idb', '.cdb', '.cbc', '.crb', '.pdb', '.gdb', '.wdb',
    '.ftm', '.yar', '.yara', '.db', '.imp', '.ign', '.ign2', '.fp', '.sfp', '.info', '.sign',
)
_SIZE_RE = re.compile(r'^\s*(\d+)\s*([kKmMgG]?)\s*$')


def parse_size(value):
    """ClamAV size notation (``100M``, ``512K``, ``2G``, bytes) to bytes."""
    match = _SIZE_RE.match(str(value))
    if not match:
        raise VerifyError('%r is not a size (use bytes or a number with K, M or G)' % value)
    return int(match.group(1)) * {'': 1, 'K': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3}[match.group(2).upper()]


def read_cvd_header(path):
    """Header of a .cvd/.cld/.cud file: ``ClamAV-VDB:time:version:signatures:flevel:...``."""
    try:
        with open(path, 'rb') as handle:
            header = handle.read(512).decode('latin-1')
    except OSError:
        return None
    if not header.startswith('ClamAV-VDB:'):
        return None
    fields = header.rstrip(' \x00').split(':')
    if len(fields) < 5:
        return None
    return {'built': fields[1], 'version': fields[2], 'signatures': fields[3],
            'functionality_level': fields[4]}


def database_info(database):
    """Describe a ClamAV database directory or file: per-file version/signature count/sha256."""
    info = {'path': database, 'files': [], 'version': None}
    if not database:
        return info
    if os.path.isdir(database):
        names = sorted(n for n in os.listdir(database) if n.lower().endswith(CLAMAV_DB_SUFFIXES))
        paths = [os.path.join(database, n) for n in names]
    elif os.path.isfile(database):
        paths = [database]
    else:
        return info
    versions = []
    for path in paths:
        if not os.path.isfile(path):
            continue
        entry = {'name': os.path.basename(path), 'size': os.path.getsize(path)}
        header = read_cvd_header(path)
        if header:
            entry.update(header)
            versions.append('%s:%s' % (os.path.splitext(entry['name'])[0], header['version']))
        else:
            try:
                entry['sha256'] = hash_file(path, ('sha256',), 1024 * 1024, what='database file')['digests']['sha256']
            except InputError as exc:
                entry['sha256'] = None
                entry['error'] = str(exc)
        info['files'].append(entry)
    if versions:
        info['version'] = ','.join(versions)
    elif info['files']:
        # Custom databases carry no version: identify them by content.
        combined = hashlib.sha256()
        for entry in info['files']:
            combined.update(('%s %s\n' % (entry['sha256'], entry['name'])).encode('utf-8'))
        unreadable = [e['name'] for e in info['files'] if e.get('error')]
        info['version'] = ('unreadable:' + ','.join(unreadable)) if unreadable else \
            'custom-sha256:' + combined.hexdigest()
    return info


def parse_clamav_output(output, paths):
    """Map each scanned path to its ClamAV line remainders (``OK``, ``<sig> FOUND``, ``... ERROR``).

    A line belongs to the longest scanned path that, followed by ``": "``, starts it.
    """
    wanted = set(paths)
    found = {}
    for line in output.splitlines():
        cut = line.rfind(': ')
        while cut > 0:
            if line[:cut] in wanted:
                found.setdefault(line[:cut], []).append(line[cut + 2:].strip())
                break
            cut = line.rfind(': ', 0, cut)
    return found


def judge_clamav_line(remainders):
    """Verdict and reason for one file from its output remainders."""
    if not remainders:
        return VERDICT_FAIL, 'scanner reported nothing for this file (not scanned)', None
    signatures = []
    for rest in remainders:
        if rest.endswith(' FOUND'):
            signatures.append(rest[:-len(' FOUND')].strip())
        elif rest != 'OK':
            return VERDICT_FAIL, 'scanner error: %s' % rest, None
    if not signatures:
        return VERDICT_OK, 'clean', None
    limits = [s for s in signatures if s.startswith('Heuristics.Limits.Exceeded')]
    encrypted = [s for s in signatures if s.startswith('Heuristics.Encrypted')]
    malware = [s for s in signatures if s not in limits and s not in encrypted]
    reasons = []
    if malware:
        reasons.append('malware found: %s' % ', '.join(malware))
    if limits:
        reasons.append('not fully scanned, exceeds scan limits: %s' % ', '.join(limits))
    if encrypted:
        reasons.append('encrypted content cannot be scanned: %s' % ', '.join(encrypted))
    return VERDICT_FAIL, '; '.join(reasons), ', '.join(signatures)


class ClamavScanner:
    """Scan files with clamscan or clamdscan, failing closed on every doubt."""

    def __init__(self, scanner='clamscan', binary=None, database=None, clamd_socket=None,
                 clamd_config=None, max_filesize='100M', max_scansize='400M', max_files=10000,
                 max_recursion=17, timeout=3600, runner=None):
        self.scanner = scanner
        self.binary = binary or scanner
        self.database = os.path.abspath(database) if database else None
        self.clamd_socket = clamd_socket
        self.clamd_config = clamd_config
        self.max_filesize = str(max_filesize)
        self.max_scansize = str(max_scansize)
        self.max_files = int(max_files)
        self.max_recursion = int(max_recursion)
        self.timeout = timeout
        self.runner = runner or run_command
        self.limit_bytes = min(parse_size(self.max_filesize), parse_size(self.max_scansize))

    def _resolve_binary(self):
        if os.path.sep in self.binary:
            return self.binary if os.access(self.binary, os.X_OK) else None
        return shutil.which(self.binary)

    def describe(self):
        info = {'name': self.scanner, 'binary': None, 'version': None, 'engine_version': None,
                'database': None,
                'limits': {'max_filesize': self.max_filesize, 'max_scansize': self.max_scansize,
                           'max_files': self.max_files, 'max_recursion': self.max_recursion,
                           'alert_exceeds_max': True}}
        binary = self._resolve_binary()
        info['binary'] = binary
        if not binary:
            return info
        args = [binary, '--version']
        config = None
        if self.scanner == 'clamdscan':
            config = self._clamd_config()
            args.append('--config-file=%s' % config)
        try:
            rc, out, _err = self.runner(args)
        finally:
            self._drop_config(config)
        text = (out or '').strip().splitlines()
        if rc == 0 and text:
            info['version'] = text[0].strip()
            parts = info['version'].split('/')
            info['engine_version'] = parts[0].replace('ClamAV', '').strip()
            if len(parts) >= 2:
                info['database_version_reported'] = parts[1]
        if self.scanner == 'clamscan':
            database = self.database or _default_clamav_dbdir()
            info['database'] = database_info(database)
        else:
            info['database'] = {'path': None, 'files': [],
                                'version': info.get('database_version_reported')}
        return info

    def _clamd_config(self):
        if self.clamd_config:
            return None
        handle, path = tempfile.mkstemp(prefix='itsop-clamdscan-', suffix='.conf')
        sock = self.clamd_socket or '/var/run/clamav/clamd.ctl'
        with os.fdopen(handle, 'w') as out:
            if sock.startswith('tcp://'):
                hostport = sock[len('tcp://'):]
                host, _sep, port = hostport.rpartition(':')
                out.write('TCPSocket %s\nTCPAddr %s\n' % (port, host.strip('[]') or '127.0.0.1'))
            else:
                out.write('LocalSocket %s\n' % sock)
        return path

    def _drop_config(self, path):
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass

    def scan(self, paths):
        """Scan ``paths`` in one run. Returns ``({path: check}, run_info)``."""
        started = time.monotonic()
        results = {}
        run = {'rc': None, 'known_signatures': None, 'stderr_tail': ''}
        binary = self._resolve_binary()

        def fail_all(reason):
            for path in paths:
                results.setdefault(path, {'verdict': VERDICT_FAIL, 'reason': reason, 'signature': None})

        if not binary:
            fail_all('scanner %s not found' % self.binary)
            return self._finish(results, run, started)
        if self.scanner == 'clamscan' and self.database:
            if not os.path.exists(self.database):
                fail_all('signature database %s does not exist' % self.database)
                return self._finish(results, run, started)
            if os.path.isdir(self.database) and not database_info(self.database)['files']:
                fail_all('signature database directory %s holds no database files' % self.database)
                return self._finish(results, run, started)
            irregular = _irregular_database_entries(self.database)
            if irregular:
                # clamscan would block on a FIFO or read a device until the scan timeout
                fail_all('signature database entry %s is not a regular file' % irregular[0])
                return self._finish(results, run, started)
        todo = []
        for path in paths:
            try:
                st = os.stat(path)
                if not stat.S_ISREG(st.st_mode):
                    raise OSError('not a regular file')
                size = st.st_size
            except OSError as exc:
                results[path] = {'verdict': VERDICT_FAIL, 'reason': 'cannot read file: %s' % exc, 'signature': None}
                continue
            if size > self.limit_bytes:
                results[path] = {'verdict': VERDICT_FAIL, 'signature': None,
                                 'reason': 'file of %d bytes exceeds the scan limit (max_filesize %s, '
                                           'max_scansize %s); it cannot be scanned and is not clean'
                                           % (size, self.max_filesize, self.max_scansize)}
                continue
            todo.append(path)
        if not todo:
            return self._finish(results, run, started)
        config = None
        if self.scanner == 'clamscan':
            args = [binary, '--stdout', '--alert-exceeds-max=yes', '--alert-encrypted=yes',
                    '--scan-archive=yes', '--max-filesize=%s' % self.max_filesize,
                    '--max-scansize=%s' % self.max_scansize, '--max-files=%d' % self.max_files,
                    '--max-recursion=%d' % self.max_recursion]
            if self.database:
                args.append('--database=%s' % self.database)
        else:
            config = self.clamd_config or self._clamd_config()
            args = [binary, '--config-file=%s' % config, '--stdout']
            sock = self.clamd_socket or ''
            args.append('--stream' if sock.startswith('tcp://') else '--fdpass')
        # The paths go in a file list (--file-list): thousands of unpacked members would not fit
        # on a command line. A path with a newline cannot be listed and is not scanned.
        listable = [p for p in todo if '\n' not in p and '\r' not in p]
        for path in todo:
            if path not in listable:
                results[path] = {'verdict': VERDICT_FAIL, 'signature': None,
                                 'reason': 'path contains a line break; it cannot be scanned'}
        todo = listable
        if not todo:
            self._drop_config(config if not self.clamd_config else None)
            return self._finish(results, run, started)
        handle, file_list = tempfile.mkstemp(prefix='itsop-scanlist-', suffix='.txt')
        with os.fdopen(handle, 'w', encoding='utf-8', errors='surrogateescape') as out_list:
            out_list.write(''.join(p + '\n' for p in todo))
        args.append('--file-list=%s' % file_list)
        try:
            rc, out, err = self.runner(args, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            fail_all('scanner timed out after %s seconds' % self.timeout)
            return self._finish(results, run, started)
        finally:
            os.unlink(file_list)
            if not self.clamd_config:
                self._drop_config(config)
        run['rc'] = rc
        run['stderr_tail'] = (err or '').strip()[-500:]
        match = re.search(r'^Known viruses:\s*(\d+)', out or '', re.M)
        if match:
            run['known_signatures'] = int(match.group(1))
        if rc not in (0, 1):
            fail_all('scanner error (exit %s): %s' % (rc, run['stderr_tail'][-300:] or 'no message'))
            return self._finish(results, run, started)
        if self.scanner == 'clamscan' and run['known_signatures'] == 0:
            fail_all('signature database is empty (0 known signatures)')
            return self._finish(results, run, started)
        parsed = parse_clamav_output(out or '', todo)
        for path in todo:
            verdict, reason, signature = judge_clamav_line(parsed.get(path))
            results[path] = {'verdict': verdict, 'reason': reason, 'signature': signature}
        if rc == 1 and all(results[p]['verdict'] == VERDICT_OK for p in todo):
            for path in todo:
                results[path] = {'verdict': VERDICT_FAIL, 'signature': None,
                                 'reason': 'scanner exit 1 (found) but no file was reported infected'}
        return self._finish(results, run, started)

    def _finish(self, results, run, started):
        run['seconds'] = round(time.monotonic() - started, 6)
        return results, run


def _irregular_database_entries(database):
    """Database files (by suffix) under ``database`` that are not regular files."""
    if os.path.isdir(database):
        paths = [os.path.join(database, n) for n in sorted(os.listdir(database))
                 if n.lower().endswith(CLAMAV_DB_SUFFIXES)]
    else:
        paths = [database]
    bad = []
    for path in paths:
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                bad.append(path)
        except OSError:
            bad.append(path)
    return bad


def _default_clamav_dbdir():
    for candidate in ('/var/lib/clamav', '/usr/local/share/clamav', '/var/db/clamav'):
        if os.path.isdir(candidate):
            return candidate
    return None
