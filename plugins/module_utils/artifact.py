# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Artifact verification: one evidence record for a set of artifacts.

Used by the ``itsop.change.artifact_verify`` module and importable by the controller
(``sopctl``). Only the standard library is used. Every check fails closed: a check that
cannot be carried out (tool missing, tool error, empty database, file beyond the scan
limits, unknown key) is a failure with a reason, never a pass.

Verdicts are the strings ``pass``, ``fail`` and ``not_requested``. The checks themselves live
in the private package ``_artifact``: ``digest`` (streaming hashes), ``checksums`` (checksum
files), ``gpg`` (signatures), ``clamav`` (malware scan) and ``unpack`` (packages opened for
the scan); this module runs them over the artifacts and builds the record.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import datetime
import hashlib
import os
import time

from ansible_collections.itsop.change.plugins.module_utils._artifact.checksums import (
    parse_checksum_entries,
    select_checksum_entries,
)
from ansible_collections.itsop.change.plugins.module_utils._artifact.clamav import (
    ClamavScanner,
    parse_size,
)
from ansible_collections.itsop.change.plugins.module_utils._artifact.digest import (
    DEFAULT_BUFFER_SIZE,
    file_identity,
    hash_fd,
    parse_digest,
)
from ansible_collections.itsop.change.plugins.module_utils._artifact.gpg import (
    DEFAULT_MAX_CLOCK_SKEW,
    GpgVerifier,
    normalize_fingerprint,
)
from ansible_collections.itsop.change.plugins.module_utils._artifact.text import printable
from ansible_collections.itsop.change.plugins.module_utils._artifact.unpack import Unpacker
from ansible_collections.itsop.change.plugins.module_utils._artifact.verdict import (
    VERDICT_FAIL,
    VERDICT_NOT_REQUESTED,
    VERDICT_OK,
    UnpackError,
    VerifyError,
)
from ansible_collections.itsop.change.plugins.module_utils.safe_input import (
    InputError,
    open_regular_file,
    read_regular_file,
)


RECORD_KIND = 'itsop.change.artifact_verification'
RECORD_VERSION = 1


#: Size limits of the files the verifier reads (every one must be a regular file).
DEFAULT_MAX_ARTIFACT_SIZE = 64 * 1024 ** 3   # artifacts are hashed in a stream
CHECKSUM_FILE_LIMIT = 16 * 1024 * 1024


#: Default wall-time limit for unpacking one artifact before the scan (seconds).
DEFAULT_UNPACK_TIMEOUT = 600


def utc_now():
    """Current UTC time as an ISO-8601 string with a ``Z`` suffix."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime('%Y-%m-%dT%H:%M:%S.') + '%06dZ' % now.microsecond


def _check(verdict, reason, **extra):
    out = {'verdict': verdict, 'reason': reason}
    out.update(extra)
    return out


def _read_checksum_check(cfile, name):
    """The checksum_file check for artifact ``name`` before hashing: entries chosen or a failure."""
    check = {'file': cfile, 'entry_name': name}
    try:
        raw = read_regular_file(cfile, CHECKSUM_FILE_LIMIT, 'checksum file')
    except InputError as exc:
        check.update(_check(VERDICT_FAIL, str(exc)))
        return check, None
    check['file_sha256'] = hashlib.sha256(raw).hexdigest()
    text = raw.decode('utf-8', 'surrogateescape')
    try:
        chosen = select_checksum_entries(parse_checksum_entries(text, 'checksum file %s' % cfile), name,
                                         'checksum file %s' % cfile)
    except VerifyError as exc:
        check.update(_check(VERDICT_FAIL, str(exc)))
        return check, None
    check['entry_lines'] = [e['line'] for e in chosen['entries']]
    check['entry_match'] = chosen['match']
    check['duplicate_entries'] = chosen['duplicates']
    if not chosen['digests']:
        check.update(_check(VERDICT_FAIL, 'no entry (sha256 or sha512) for %r in checksum file %s'
                            % (printable(name), cfile)))
        return check, None
    return check, chosen['digests']


def _scan_limits(clamav):
    from_options = dict(clamav or {})
    max_filesize = from_options.get('max_filesize') or '100M'
    max_scansize = from_options.get('max_scansize') or '400M'
    return {
        'max_bytes': parse_size(max_scansize),
        'max_members': int(from_options.get('max_files') or 10000),
        'max_depth': int(from_options.get('max_recursion') or 17),
        'member_limit': min(parse_size(max_filesize), parse_size(max_scansize)),
    }


def verify_artifacts(artifacts, gpg_keys=None, gpg_fingerprints=None, gpg_binary='gpg',
                     clamav=None, buffer_size=DEFAULT_BUFFER_SIZE, runner=None,
                     max_artifact_size=DEFAULT_MAX_ARTIFACT_SIZE, gpg_max_clock_skew=DEFAULT_MAX_CLOCK_SKEW,
                     unpack=None, now=None):
    """Verify artifacts and return the evidence dictionary.

    ``artifacts`` is a list of dicts with ``path`` and optional ``name``, ``size``, ``digest``,
    ``checksum_file``, ``signature``, ``gpg_fingerprints`` and ``scan``. ``clamav`` holds the
    :class:`ClamavScanner` options (``None`` disables scanning for every artifact). ``unpack``
    holds ``timeout`` (seconds), ``tmpdir`` and ``zstd_binary`` for unpacking packages before
    the scan; its byte, member and nesting limits are ``clamav``'s ``max_scansize``,
    ``max_files`` and ``max_recursion``. ``now`` (seconds since the epoch) is the time
    signatures are judged against (default: the current time).

    Every file read must be a regular file (a FIFO or device is refused without blocking): the
    artifact (at most ``max_artifact_size`` bytes, hashed in a stream from the descriptor that
    was checked), the checksum file, the signature and the key files (small limits).
    """
    started_at = utc_now()
    started = time.monotonic()
    default_pins = [normalize_fingerprint(f) for f in (gpg_fingerprints or [])]
    results = []
    try:
        for spec in artifacts:
            path = os.path.abspath(spec['path'])
            name = spec.get('name') or os.path.basename(path)
            res = {'name': name, 'path': path, 'passed': False, 'failures': [], 'size': None,
                   'digests': {}, 'started': utc_now(), 'checks': {}}
            results.append(res)
            res['_t0'] = time.monotonic()
            try:
                fd, st = open_regular_file(path, max_artifact_size, 'artifact')
            except InputError as exc:
                res['checks']['exists'] = _check(VERDICT_FAIL, str(exc))
                continue
            res['_fd'] = fd
            res['_identity'] = file_identity(st)
            res['checks']['exists'] = _check(VERDICT_OK, 'regular file')
            expected = []
            try:
                if spec.get('digest'):
                    expected.append(parse_digest(spec['digest']))
            except VerifyError as exc:
                res['checks']['digest'] = _check(VERDICT_FAIL, str(exc), expected=spec['digest'])
            checksum_digests = None
            if spec.get('checksum_file'):
                res['checks']['checksum_file'], checksum_digests = _read_checksum_check(spec['checksum_file'], name)
            algorithms = {'sha256'}
            algorithms.update(e[0] for e in expected)
            algorithms.update(checksum_digests or {})
            try:
                hashed = hash_fd(fd, algorithms, buffer_size, limit=max_artifact_size, what='artifact %s' % path)
            except (InputError, OSError) as exc:
                res['checks']['exists'] = _check(VERDICT_FAIL, 'cannot read artifact %s: %s' % (path, exc))
                continue
            res['size'] = hashed['size']
            res['digests'] = hashed['digests']
            res['hash_seconds'] = hashed['seconds']
            if hashed['size'] != st.st_size:
                res['checks']['exists'] = _check(VERDICT_FAIL, 'artifact %s changed size while being read '
                                                 '(%d bytes at open, %d read)' % (path, st.st_size, hashed['size']))
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
            if checksum_digests:
                check = res['checks']['checksum_file']
                mismatched = [a for a in sorted(checksum_digests) if hashed['digests'][a] != checksum_digests[a]]
                algo = 'sha512' if 'sha512' in checksum_digests else 'sha256'
                check.update(algorithm=algo, expected=checksum_digests[algo], actual=hashed['digests'][algo],
                             algorithms=sorted(checksum_digests))
                if mismatched:
                    reason = ('%s of %s does not match its entry in %s (renamed, swapped or modified file)'
                              % (mismatched[0], printable(name), check['file']))
                    check.update(_check(VERDICT_FAIL, reason))
                else:
                    check.update(_check(VERDICT_OK, 'matches entry for %s' % printable(name)))
            elif 'checksum_file' not in res['checks']:
                res['checks']['checksum_file'] = _check(VERDICT_NOT_REQUESTED, 'no checksum file given')

        pairs = [(artifacts[i], results[i]) for i in range(len(results))]
        gpg_info, needs_gpg = _verify_signatures(pairs, gpg_keys, gpg_binary, runner, default_pins,
                                                 now, gpg_max_clock_skew)
        scanner_info = _scan(pairs, clamav, runner, unpack)
    finally:
        for res in results:
            fd = res.pop('_fd', None)
            if fd is not None:
                os.close(fd)

    for res in results:
        identity = res.pop('_identity', None)
        if identity is None or res['checks']['exists']['verdict'] != VERDICT_OK:
            continue
        try:
            now_identity = file_identity(os.stat(res['path']))
        except OSError as exc:
            now_identity = str(exc)
        if now_identity != identity:
            res['checks']['exists'] = _check(VERDICT_FAIL, 'artifact %s was replaced or modified during '
                                             'verification' % res['path'])

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


def _readable(res):
    return res['checks']['exists']['verdict'] == VERDICT_OK and '_fd' in res


def _verify_signatures(pairs, gpg_keys, gpg_binary, runner, default_pins, now, max_clock_skew):
    """Signatures: one isolated GNUPGHOME for the whole run; the data comes from each open fd."""
    needs_gpg = [(spec, res) for spec, res in pairs if spec.get('signature') and _readable(res)]
    gpg_info = {'binary': gpg_binary, 'version': None, 'imported_keys': [],
                'pinned_fingerprints': sorted(default_pins), 'max_clock_skew': max_clock_skew}
    if needs_gpg:
        verifier = GpgVerifier(gpg_keys, gpg_binary, runner, now=now, max_clock_skew=max_clock_skew).open()
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
                res['checks']['signature'] = verifier.verify(res['path'], spec['signature'], pins,
                                                             data_fd=res['_fd'])
        finally:
            verifier.close()
    for _spec, res in pairs:
        if res['checks']['exists']['verdict'] == VERDICT_OK and 'signature' not in res['checks']:
            res['checks']['signature'] = _check(VERDICT_NOT_REQUESTED, 'no signature given')
    return gpg_info, needs_gpg


def _scan(pairs, clamav, runner, unpack):
    """Malware scan: unpack packages (bounded), then one scanner run for artifacts and members."""
    if clamav is None:
        for _spec, res in pairs:
            if res['checks']['exists']['verdict'] == VERDICT_OK:
                res['checks']['malware_scan'] = _check(VERDICT_NOT_REQUESTED, 'scan not requested')
        return None
    unpack = dict(unpack or {})
    unpack_timeout = unpack.get('timeout')
    if unpack_timeout is None:
        unpack_timeout = DEFAULT_UNPACK_TIMEOUT
    scanner = ClamavScanner(runner=runner, **clamav)
    scanner_info = scanner.describe()
    limits = _scan_limits(clamav)
    scanner_info['unpack'] = {'max_bytes': limits['max_bytes'], 'max_members': limits['max_members'],
                              'max_depth': limits['max_depth'],
                              'timeout': unpack_timeout}
    to_scan = [res for spec, res in pairs if spec.get('scan', True) and _readable(res)]
    unpackers = []
    try:
        targets = []
        for res in to_scan:
            unpacker = Unpacker(limits['max_bytes'], limits['max_members'], limits['max_depth'],
                                timeout=unpack_timeout,
                                tmpdir=unpack.get('tmpdir'), zstd_binary=unpack.get('zstd_binary') or 'zstd')
            unpackers.append(unpacker)
            error = None
            try:
                unpacker.unpack(res['path'], res['name'], fd=res.get('_fd'))
            except UnpackError as exc:
                error = str(exc)
            except OSError as exc:
                error = '%s: cannot unpack (%s)' % (printable(res['name']), exc)
            res['_unpack'] = (unpacker, error)
            targets.append(res['path'])
            targets.extend(m['path'] for m in unpacker.members)
        if to_scan:
            scan_results, run = scanner.scan(targets)
            scanner_info['run'] = run
            for res in to_scan:
                unpacker, error = res.pop('_unpack')
                res['checks']['malware_scan'] = _combine_scan(res, scan_results, unpacker, error, scanner_info)
    finally:
        for res in to_scan:
            res.pop('_unpack', None)
        for unpacker in unpackers:
            unpacker.cleanup()
    for _spec, res in pairs:
        if res['checks']['exists']['verdict'] == VERDICT_OK and 'malware_scan' not in res['checks']:
            res['checks']['malware_scan'] = _check(VERDICT_NOT_REQUESTED, 'scan not requested')
    return scanner_info


MAX_REPORTED_MEMBERS = 50


def _combine_scan(res, scan_results, unpacker, unpack_error, scanner_info):
    """One malware_scan check from the artifact's own result, its members' results and unpacking."""
    own = scan_results[res['path']]
    findings = []
    for member in unpacker.members:
        mres = scan_results.get(member['path']) or {'verdict': VERDICT_FAIL, 'signature': None,
                                                    'reason': 'scanner reported nothing (not scanned)'}
        if mres['verdict'] != VERDICT_OK:
            findings.append({'member': member['member'], 'verdict': mres['verdict'],
                             'reason': mres['reason'], 'signature': mres['signature']})
    reasons = []
    signatures = []
    if own['verdict'] != VERDICT_OK:
        reasons.append(own['reason'])
        if own['signature']:
            signatures.append(own['signature'])
    for finding in findings[:MAX_REPORTED_MEMBERS]:
        reasons.append('%s in %s' % (finding['reason'], finding['member']))
        if finding['signature'] and finding['signature'] not in signatures:
            signatures.append(finding['signature'])
    if len(findings) > MAX_REPORTED_MEMBERS:
        reasons.append('and %d more failing members' % (len(findings) - MAX_REPORTED_MEMBERS))
    if unpack_error:
        reasons.append('cannot unpack for scanning, contents not fully scanned: %s' % unpack_error)
    summary = unpacker.summary()
    summary['error'] = unpack_error
    failed = bool(reasons)
    if not failed:
        reason = 'clean' if not unpacker.members else 'clean (artifact and %d unpacked members)' % len(
            unpacker.members)
    else:
        reason = '; '.join(reasons)
    return _check(VERDICT_FAIL if failed else VERDICT_OK, reason,
                  signature=', '.join(signatures) if signatures else None,
                  scanner=scanner_info['name'], scanner_version=scanner_info['version'],
                  database_version=(scanner_info['database'] or {}).get('version'),
                  unpacked=summary, member_findings=findings[:MAX_REPORTED_MEMBERS])


def failure_message(evidence):
    """One message naming every failing artifact and why."""
    parts = []
    for res in evidence['artifacts']:
        if not res['passed']:
            parts.append('%s (%s): %s' % (res['name'], res['path'], '; '.join(res['failures'])))
    return '%d of %d artifacts failed verification: %s' % (
        evidence['summary']['failed'], evidence['summary']['total'], ' | '.join(parts))
