# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Artifact verification backend: streaming hashes, checksum files, GPG, ClamAV.

Used by the ``itsop.change.artifact_verify`` module and importable by the controller
(``sopctl``). Only the standard library is used. Every check fails closed: a check that
cannot be carried out (tool missing, tool error, empty database, file beyond the scan
limits, unknown key) is a failure with a reason, never a pass.

Verdicts are the strings ``pass``, ``fail`` and ``not_requested``.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import datetime
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time

VERDICT_OK = 'pass'
VERDICT_FAIL = 'fail'
VERDICT_NOT_REQUESTED = 'not_requested'

RECORD_KIND = 'itsop.change.artifact_verification'
RECORD_VERSION = 1

DEFAULT_BUFFER_SIZE = 4 * 1024 * 1024
DIGEST_LENGTHS = {'sha256': 64, 'sha512': 128}
_HEX_RE = re.compile(r'^[0-9a-fA-F]+$')

# gpg --status-fd keywords that make a signature check fail whatever else is reported.
GPG_FAIL_KEYWORDS = (
    'BADSIG', 'ERRSIG', 'EXPSIG', 'EXPKEYSIG', 'REVKEYSIG', 'NO_PUBKEY', 'NODATA',
    'UNEXPECTED', 'BADARMOR', 'KEYREVOKED', 'FAILURE',
)

# ClamAV database file suffixes (official and custom signature formats).
CLAMAV_DB_SUFFIXES = (
    '.cvd', '.cld', '.cud', '.ndb', '.ndu', '.hdb', '.hdu', '.hsb', '.hsu', '.mdb', '.mdu',
    '.msb', '.msu', '.ldb', '.ldu', '.idb', '.cdb', '.cbc', '.crb', '.pdb', '.gdb', '.wdb',
    '.ftm', '.yar', '.yara', '.db', '.imp', '.ign', '.ign2', '.fp', '.sfp', '.info', '.sign',
)
_SIZE_RE = re.compile(r'^\s*(\d+)\s*([kKmMgG]?)\s*$')


def utc_now():
    """Current UTC time as an ISO-8601 string with a ``Z`` suffix."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime('%Y-%m-%dT%H:%M:%S.') + '%06dZ' % now.microsecond


class VerifyError(Exception):
    """An option value that cannot be used (bad digest notation, bad size)."""


# --------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------

def hash_file(path, algorithms=('sha256',), buffer_size=DEFAULT_BUFFER_SIZE):
    """Hash ``path`` in one streaming pass.

    Reads with ``readinto`` into one reused buffer (no per-chunk allocation) and feeds every
    requested algorithm from a memoryview. Returns ``{'size': int, 'digests': {algo: hex},
    'seconds': float}``.
    """
    hashers = [(name, hashlib.new(name)) for name in sorted(set(algorithms))]
    buf = bytearray(buffer_size)
    view = memoryview(buf)
    size = 0
    started = time.monotonic()
    with open(path, 'rb', buffering=0) as handle:
        try:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except (AttributeError, OSError):
            pass
        readinto = handle.readinto
        if len(hashers) == 1:
            update = hashers[0][1].update
            while True:
                count = readinto(buf)
                if not count:
                    break
                size += count
                update(view[:count] if count < buffer_size else buf)
        else:
            while True:
                count = readinto(buf)
                if not count:
                    break
                size += count
                chunk = view[:count] if count < buffer_size else buf
                for hasher in [h for _name, h in hashers]:
                    hasher.update(chunk)
    return {
        'size': size,
        'digests': dict((name, hasher.hexdigest()) for name, hasher in hashers),
        'seconds': round(time.monotonic() - started, 6),
    }


def parse_digest(value, algorithm=None):
    """Parse ``sha256:<hex>``, ``sha512:<hex>`` or bare hex into ``(algorithm, lowercase hex)``.

    A bare hex digest's algorithm comes from ``algorithm`` or from its length.
    """
    text = (value or '').strip()
    algo = algorithm
    if ':' in text:
        algo, text = text.split(':', 1)
        algo = algo.strip().lower().replace('-', '')
        text = text.strip()
    if not text or not _HEX_RE.match(text):
        raise VerifyError('digest %r is not hexadecimal' % value)
    if algo is None:
        for name, length in DIGEST_LENGTHS.items():
            if len(text) == length:
                algo = name
        if algo is None:
            raise VerifyError('digest %r has %d hex digits; expected 64 (sha256) or 128 (sha512)'
                              % (value, len(text)))
    if algo not in DIGEST_LENGTHS:
        raise VerifyError('digest algorithm %r is not supported (use sha256 or sha512)' % algo)
    if len(text) != DIGEST_LENGTHS[algo]:
        raise VerifyError('%s digest must have %d hex digits, got %d'
                          % (algo, DIGEST_LENGTHS[algo], len(text)))
    return algo, text.lower()


# --------------------------------------------------------------------------------------------
# Checksum files (GNU sha256sum/sha512sum and BSD "SHA256 (name) = hex" formats)
# --------------------------------------------------------------------------------------------

_BSD_LINE = re.compile(r'^(SHA256|SHA512|SHA2-256|SHA2-512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)\s*$')
_GNU_LINE = re.compile(r'^\\?([0-9a-fA-F]{64}|[0-9a-fA-F]{128}) [ *](.+)$')


def parse_checksum_text(text):
    """Parse a checksum file. Returns ``{name: [(algorithm, hex), ...]}``.

    Names are kept as written, and also indexed by their base name so a file listed as
    ``dist/pkg.tar.gz`` is found for an artifact named ``pkg.tar.gz``.
    """
    entries = {}
    for raw in text.splitlines():
        line = raw.rstrip('\r')
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        match = _BSD_LINE.match(line.strip())
        if match:
            algo = 'sha256' if match.group(1).endswith('256') else 'sha512'
            name, digest = match.group(2), match.group(3).lower()
            if len(digest) != DIGEST_LENGTHS[algo]:
                continue
        else:
            match = _GNU_LINE.match(line)
            if not match:
                continue
            digest, name = match.group(1).lower(), match.group(2)
            algo = 'sha256' if len(digest) == 64 else 'sha512'
            if line.startswith('\\'):
                name = name.replace('\\n', '\n').replace('\\\\', '\\')
        entries.setdefault(name, []).append((algo, digest))
    return entries


def lookup_checksum(entries, name):
    """Entries for ``name``: exact match first, else entries whose base name equals ``name``."""
    if name in entries:
        return list(entries[name])
    found = []
    for listed, values in entries.items():
        if os.path.basename(listed.lstrip('*')) == name or listed.lstrip('./') == name:
            found.extend(values)
    return found


# --------------------------------------------------------------------------------------------
# GPG
# --------------------------------------------------------------------------------------------

def normalize_fingerprint(value):
    fpr = re.sub(r'\s+', '', value or '').upper()
    if fpr.startswith('0X'):
        fpr = fpr[2:]
    if not re.match(r'^[0-9A-F]{40}$|^[0-9A-F]{64}$', fpr):
        raise VerifyError('%r is not a full OpenPGP fingerprint (40 or 64 hex digits); '
                          'key IDs are not accepted for pinning' % value)
    return fpr


def judge_gpg_status(status_text, pinned):
    """Judge ``gpg --status-fd`` output against pinned fingerprints.

    Passes only when every signature in the file is good (one GOODSIG per NEWSIG), a VALIDSIG
    names a pinned fingerprint (as the signing key or as the primary key), and no failing
    keyword appears. The exit code of gpg is never consulted here.
    """
    pinned = set(pinned)
    lines = [line for line in status_text.splitlines() if line.startswith('[GNUPG:] ')]
    keywords = []
    validsigs = []
    newsig = goodsig = 0
    for line in lines:
        fields = line[len('[GNUPG:] '):].split()
        if not fields:
            continue
        keyword = fields[0]
        keywords.append(keyword)
        if keyword == 'NEWSIG':
            newsig += 1
        elif keyword == 'GOODSIG':
            goodsig += 1
        elif keyword == 'VALIDSIG' and len(fields) >= 2:
            signer = fields[1].upper()
            primary = fields[10].upper() if len(fields) >= 11 else signer
            validsigs.append({'signer_fingerprint': signer, 'primary_fingerprint': primary})
    result = {
        'verdict': VERDICT_FAIL,
        'reason': '',
        'status': lines,
        'signers': validsigs,
        'signer_fingerprint': validsigs[0]['signer_fingerprint'] if validsigs else None,
        'primary_fingerprint': validsigs[0]['primary_fingerprint'] if validsigs else None,
    }
    bad = [k for k in GPG_FAIL_KEYWORDS if k in keywords]
    if bad:
        reasons = {
            'BADSIG': 'bad signature (file or signature modified)',
            'ERRSIG': 'signature could not be checked',
            'EXPSIG': 'signature expired',
            'EXPKEYSIG': 'signed by an expired key',
            'REVKEYSIG': 'signed by a revoked key',
            'KEYREVOKED': 'signing key is revoked',
            'NO_PUBKEY': 'public key of the signer is not among the provided keys',
            'NODATA': 'no OpenPGP signature data found',
            'UNEXPECTED': 'unexpected data in signature',
            'BADARMOR': 'signature armor is corrupt',
            'FAILURE': 'gpg reported a failure',
        }
        result['reason'] = '; '.join('%s: %s' % (k, reasons[k]) for k in bad)
        return result
    if not validsigs or goodsig == 0:
        result['reason'] = 'no valid signature reported by gpg'
        return result
    if newsig and goodsig != newsig:
        result['reason'] = 'only %d of %d signatures are good' % (goodsig, newsig)
        return result
    unpinned = [s for s in validsigs
                if s['signer_fingerprint'] not in pinned and s['primary_fingerprint'] not in pinned]
    if unpinned:
        result['reason'] = ('good signature by key %s, which is not a pinned fingerprint'
                            % unpinned[0]['primary_fingerprint'])
        return result
    result['verdict'] = VERDICT_OK
    result['reason'] = 'good signature by pinned key %s' % validsigs[0]['primary_fingerprint']
    return result


def _default_runner(args, data=None, env=None, timeout=None):
    """Run a command without a shell in the C locale; returns ``(rc, stdout, stderr)``."""
    run_env = dict(os.environ)
    run_env.update({'LC_ALL': 'C', 'LANG': 'C'})
    run_env.update(env or {})
    proc = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=run_env, timeout=timeout, check=False)
    return (proc.returncode, proc.stdout.decode('utf-8', 'replace'),
            proc.stderr.decode('utf-8', 'replace'))


class GpgVerifier:
    """Verify detached signatures in an isolated, temporary GNUPGHOME.

    Only the given key files are imported; keyservers and auto key retrieval are off. The
    home directory is removed (and its agent stopped) by :meth:`close`.
    """

    def __init__(self, key_files, gpg_binary='gpg', runner=None):
        self.gpg = gpg_binary
        self.runner = runner or _default_runner
        self.key_files = list(key_files or [])
        self.home = None
        self.version = None
        self.error = None
        self.imported = []

    def _base(self):
        # Trust comes from the pinned fingerprints, not from gpg's web of trust.
        return [self.gpg, '--homedir', self.home, '--batch', '--no-tty', '--no-options',
                '--no-auto-key-locate', '--no-auto-key-retrieve', '--no-default-keyring',
                '--keyring', os.path.join(self.home, 'pubring.kbx')]

    def open(self):
        if not self.gpg or (os.path.sep not in self.gpg and shutil.which(self.gpg) is None):
            self.error = 'gpg binary %r not found' % self.gpg
            return self
        # A short path under the system temp dir keeps agent socket paths short.
        self.home = tempfile.mkdtemp(prefix='itsop-gpg-')
        os.chmod(self.home, 0o700)
        rc, out, err = self.runner([self.gpg, '--version'])
        if rc == 0 and out:
            self.version = out.splitlines()[0].strip()
        for key_file in self.key_files:
            if not os.path.isfile(key_file):
                self.error = 'key file %s does not exist' % key_file
                return self
            args = self._base()
            args.extend(['--status-fd', '1', '--import', key_file])
            rc, out, err = self.runner(args)
            if rc != 0 and 'IMPORT_OK' not in out:
                self.error = 'importing key file %s failed: %s' % (key_file, err.strip()[-300:])
                return self
            for line in out.splitlines():
                if line.startswith('[GNUPG:] IMPORT_OK '):
                    fields = line.split()
                    if len(fields) >= 4 and fields[3].upper() not in self.imported:
                        self.imported.append(fields[3].upper())
        return self

    def verify(self, path, signature, pinned):
        started = time.monotonic()
        result = {'verdict': VERDICT_FAIL, 'signature_file': signature, 'pinned_fingerprints': sorted(pinned),
                  'status': [], 'signers': [], 'signer_fingerprint': None,
                  'primary_fingerprint': None}
        if self.error:
            result['reason'] = self.error
        elif not pinned:
            result['reason'] = 'no pinned fingerprints configured; a signature cannot be trusted'
        elif not os.path.isfile(signature):
            result['reason'] = 'signature file %s does not exist' % signature
        else:
            args = self._base()
            args.extend(['--trust-model', 'always', '--status-fd', '1', '--verify', signature, path])
            rc, out, _err = self.runner(args)
            result.update(judge_gpg_status(out, pinned))
            result['gpg_rc'] = rc
            if result['verdict'] == VERDICT_OK and rc != 0:
                result['verdict'] = VERDICT_FAIL
                result['reason'] = 'gpg exited with %d despite a valid signature' % rc
        result['seconds'] = round(time.monotonic() - started, 6)
        return result

    def close(self):
        if self.home and os.path.isdir(self.home):
            gpgconf = shutil.which('gpgconf')
            if gpgconf:
                try:
                    self.runner([gpgconf, '--homedir', self.home, '--kill', 'all'])
                except (OSError, subprocess.SubprocessError):
                    pass
            shutil.rmtree(self.home, ignore_errors=True)
        self.home = None


# --------------------------------------------------------------------------------------------
# ClamAV
# --------------------------------------------------------------------------------------------

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
            entry['sha256'] = hash_file(path, ('sha256',), 1024 * 1024)['digests']['sha256']
        info['files'].append(entry)
    if versions:
        info['version'] = ','.join(versions)
    elif info['files']:
        # Custom databases carry no version: identify them by content.
        combined = hashlib.sha256()
        for entry in info['files']:
            combined.update(('%s %s\n' % (entry['sha256'], entry['name'])).encode('utf-8'))
        info['version'] = 'custom-sha256:' + combined.hexdigest()
    return info


def parse_clamav_output(output, paths):
    """Map each scanned path to its ClamAV line remainder (``OK``, ``<sig> FOUND``, ``... ERROR``)."""
    by_length = sorted(paths, key=len, reverse=True)
    found = {}
    for line in output.splitlines():
        for path in by_length:
            prefix = path + ': '
            if line.startswith(prefix):
                found.setdefault(path, []).append(line[len(prefix):].strip())
                break
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
        self.runner = runner or _default_runner
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
        todo = []
        for path in paths:
            try:
                size = os.path.getsize(path)
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
        args.extend(todo)
        try:
            rc, out, err = self.runner(args, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            fail_all('scanner timed out after %s seconds' % self.timeout)
            return self._finish(results, run, started)
        finally:
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


def _default_clamav_dbdir():
    for candidate in ('/var/lib/clamav', '/usr/local/share/clamav', '/var/db/clamav'):
        if os.path.isdir(candidate):
            return candidate
    return None


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------

def _check(verdict, reason, **extra):
    out = {'verdict': verdict, 'reason': reason}
    out.update(extra)
    return out


def verify_artifacts(artifacts, gpg_keys=None, gpg_fingerprints=None, gpg_binary='gpg',
                     clamav=None, buffer_size=DEFAULT_BUFFER_SIZE, runner=None):
    """Verify artifacts and return the evidence dictionary.

    ``artifacts`` is a list of dicts with ``path`` and optional ``name``, ``size``, ``digest``,
    ``checksum_file``, ``signature``, ``gpg_fingerprints`` and ``scan``. ``clamav`` holds the
    :class:`ClamavScanner` options (``None`` disables scanning for every artifact).
    """
    started_at = utc_now()
    started = time.monotonic()
    default_pins = [normalize_fingerprint(f) for f in (gpg_fingerprints or [])]
    results = []
    for spec in artifacts:
        path = os.path.abspath(spec['path'])
        name = spec.get('name') or os.path.basename(path)
        res = {'name': name, 'path': path, 'passed': False, 'failures': [], 'size': None,
               'digests': {}, 'started': utc_now(), 'checks': {}}
        results.append(res)
        res['_t0'] = time.monotonic()
        if not os.path.isfile(path):
            res['checks']['exists'] = _check(VERDICT_FAIL, 'file %s does not exist or is not a regular file' % path)
            continue
        res['checks']['exists'] = _check(VERDICT_OK, 'regular file')
        expected = []
        try:
            if spec.get('digest'):
                expected.append(parse_digest(spec['digest']))
        except VerifyError as exc:
            res['checks']['digest'] = _check(VERDICT_FAIL, str(exc), expected=spec['digest'])
        checksum_entries = None
        if spec.get('checksum_file'):
            cfile = spec['checksum_file']
            try:
                with open(cfile, 'rb') as handle:
                    raw = handle.read()
                checksum_entries = lookup_checksum(parse_checksum_text(raw.decode('utf-8', 'replace')), name)
                res['checks']['checksum_file'] = {
                    'file': cfile, 'file_sha256': hashlib.sha256(raw).hexdigest(), 'entry_name': name}
            except OSError as exc:
                res['checks']['checksum_file'] = _check(
                    VERDICT_FAIL, 'cannot read checksum file %s: %s' % (cfile, exc), file=cfile)
        algorithms = {'sha256'}
        algorithms.update(e[0] for e in expected)
        algorithms.update(a for a, dummy in (checksum_entries or []))
        hashed = hash_file(path, algorithms, buffer_size)
        res['size'] = hashed['size']
        res['digests'] = hashed['digests']
        res['hash_seconds'] = hashed['seconds']
        if spec.get('size') is not None:
            ok = int(spec['size']) == hashed['size']
            res['checks']['size'] = _check(VERDICT_OK if ok else VERDICT_FAIL,
                                           'size matches' if ok else 'size is %d bytes, expected %d'
                                           % (hashed['size'], int(spec['size'])),
                                           expected=int(spec['size']), actual=hashed['size'])
        else:
            res['checks']['size'] = _check(VERDICT_NOT_REQUESTED, 'no expected size given', actual=hashed['size'])
        if expected:
            algo, want = expected[0]
            got = hashed['digests'][algo]
            ok = got == want
            res['checks']['digest'] = _check(VERDICT_OK if ok else VERDICT_FAIL,
                                             '%s matches' % algo if ok else '%s mismatch' % algo,
                                             algorithm=algo, expected=want, actual=got)
        elif 'digest' not in res['checks']:
            res['checks']['digest'] = _check(VERDICT_NOT_REQUESTED, 'no expected digest given')
        if checksum_entries is not None:
            check = res['checks']['checksum_file']
            if not checksum_entries:
                check.update(_check(VERDICT_FAIL, 'no entry for %r in checksum file %s' % (name, check['file'])))
            else:
                mismatched = [(a, d) for a, d in checksum_entries if hashed['digests'][a] != d]
                algo, want = checksum_entries[0]
                check.update(algorithm=algo, expected=want, actual=hashed['digests'][algo])
                if mismatched:
                    reason = ('%s of %s does not match its entry in %s (renamed, swapped or modified file)'
                              % (mismatched[0][0], name, check['file']))
                    check.update(_check(VERDICT_FAIL, reason))
                else:
                    check.update(_check(VERDICT_OK, 'matches entry for %s' % name))
        elif 'checksum_file' not in res['checks']:
            res['checks']['checksum_file'] = _check(VERDICT_NOT_REQUESTED, 'no checksum file given')

    # Signatures: one isolated GNUPGHOME for the whole run.
    pairs = [(artifacts[i], results[i]) for i in range(len(results))]
    needs_gpg = [(spec, res) for spec, res in pairs
                 if spec.get('signature') and res['checks']['exists']['verdict'] == VERDICT_OK]
    gpg_info = {'binary': gpg_binary, 'version': None, 'imported_keys': [],
                'pinned_fingerprints': sorted(default_pins)}
    if needs_gpg:
        verifier = GpgVerifier(gpg_keys, gpg_binary, runner).open()
        try:
            gpg_info['version'] = verifier.version
            gpg_info['imported_keys'] = list(verifier.imported)
            for spec, res in needs_gpg:
                try:
                    pins = [normalize_fingerprint(f) for f in spec['gpg_fingerprints']] \
                        if spec.get('gpg_fingerprints') else default_pins
                except VerifyError as exc:
                    res['checks']['signature'] = _check(VERDICT_FAIL, str(exc))
                    continue
                res['checks']['signature'] = verifier.verify(res['path'], spec['signature'], pins)
        finally:
            verifier.close()
    for res in results:
        if res['checks']['exists']['verdict'] == VERDICT_OK and 'signature' not in res['checks']:
            res['checks']['signature'] = _check(VERDICT_NOT_REQUESTED, 'no signature given')

    # Malware scan: one scanner run for all artifacts that ask for it.
    scanner_info = None
    to_scan = [res for spec, res in pairs
               if spec.get('scan', True) and clamav is not None
               and res['checks']['exists']['verdict'] == VERDICT_OK]
    if clamav is not None:
        scanner = ClamavScanner(runner=runner, **clamav)
        scanner_info = scanner.describe()
        if to_scan:
            scan_results, run = scanner.scan([r['path'] for r in to_scan])
            scanner_info['run'] = run
            for res in to_scan:
                sres = scan_results[res['path']]
                res['checks']['malware_scan'] = _check(sres['verdict'], sres['reason'],
                                                       signature=sres['signature'],
                                                       scanner=scanner_info['name'],
                                                       scanner_version=scanner_info['version'],
                                                       database_version=(scanner_info['database'] or {})
                                                       .get('version'))
    for res in results:
        if res['checks']['exists']['verdict'] == VERDICT_OK and 'malware_scan' not in res['checks']:
            res['checks']['malware_scan'] = _check(VERDICT_NOT_REQUESTED, 'scan not requested')

    for res in results:
        for check_name, check in res['checks'].items():
            if check['verdict'] == VERDICT_FAIL:
                res['failures'].append('%s: %s' % (check_name, check['reason']))
        res['passed'] = not res['failures']
        res['finished'] = utc_now()
        res['seconds'] = round(time.monotonic() - res.pop('_t0'), 6)
    failed = [r['name'] for r in results if not r['passed']]
    return {
        'kind': RECORD_KIND,
        'record_version': RECORD_VERSION,
        'started': started_at,
        'finished': utc_now(),
        'seconds': round(time.monotonic() - started, 6),
        'passed': not failed,
        'summary': {'total': len(results), 'passed': len(results) - len(failed), 'failed': len(failed)},
        'failed_artifacts': failed,
        'artifacts': results,
        'scanner': scanner_info,
        'gpg': gpg_info if needs_gpg else None,
    }


def failure_message(evidence):
    """One message naming every failing artifact and why."""
    parts = []
    for res in evidence['artifacts']:
        if not res['passed']:
            parts.append('%s (%s): %s' % (res['name'], res['path'], '; '.join(res['failures'])))
    return '%d of %d artifacts failed verification: %s' % (
        evidence['summary']['failed'], evidence['summary']['total'], ' | '.join(parts))
