# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""OpenPGP detached signatures: gpg status parsing, key validity at signing time, pinning.

:class:`GpgVerifier` runs gpg in an isolated, temporary GNUPGHOME with only the given keys;
:func:`judge_gpg_status` decides from gpg's ``--status-fd`` output, never from its exit code.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import calendar
import datetime
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time

from ansible_collections.itsop.change.plugins.module_utils._artifact.process import run_command
from ansible_collections.itsop.change.plugins.module_utils._artifact.verdict import (
    VERDICT_FAIL,
    VERDICT_OK,
    VerifyError,
)
from ansible_collections.itsop.change.plugins.module_utils.safe_input import (
    InputError,
    open_regular_file,
    read_regular_file,
)


SIGNATURE_FILE_LIMIT = 1024 * 1024
KEY_FILE_LIMIT = 16 * 1024 * 1024


#: Default tolerated clock skew for signatures dated in the future (seconds).
DEFAULT_MAX_CLOCK_SKEW = 300


# gpg --status-fd keywords that make a signature check fail whatever else is reported.
GPG_FAIL_KEYWORDS = (
    'BADSIG', 'ERRSIG', 'EXPSIG', 'EXPKEYSIG', 'REVKEYSIG', 'NO_PUBKEY', 'NODATA',
    'UNEXPECTED', 'BADARMOR', 'KEYREVOKED', 'FAILURE',
)


def normalize_fingerprint(value):
    fpr = re.sub(r'\s+', '', value or '').upper()
    if fpr.startswith('0X'):
        fpr = fpr[2:]
    if not re.match(r'^[0-9A-F]{40}$|^[0-9A-F]{64}$', fpr):
        raise VerifyError('%r is not a full OpenPGP fingerprint (40 or 64 hex digits); '
                          'key IDs are not accepted for pinning' % value)
    return fpr


def _gpg_time(value):
    """A gpg status/colon time field (seconds since the epoch or ISO ``YYYYMMDDTHHMMSS``) or None."""
    value = (value or '').strip()
    if re.match(r'^\d+$', value):
        return int(value)
    match = re.match(r'^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})$', value)
    if match:
        return calendar.timegm([int(g) for g in match.groups()] + [0, 0, 0])
    return None


def _iso(seconds):
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def parse_gpg_key_listing(colon_text):
    """Keys from ``gpg --with-colons --fixed-list-mode --with-subkey-fingerprint --list-keys``.

    Returns ``{fingerprint: {'primary', 'created', 'expires', 'revoked', 'validity', 'subkey'}}``
    for every primary key and subkey (times in seconds since the epoch, ``expires`` None when
    the key does not expire).
    """
    keys = {}
    primary = None
    pending = None
    for line in colon_text.splitlines():
        fields = line.split(':')
        kind = fields[0]
        if kind in ('pub', 'sub') and len(fields) > 6:
            pending = {'subkey': kind == 'sub', 'validity': fields[1],
                       'revoked': fields[1] == 'r', 'created': _gpg_time(fields[5]),
                       'expires': _gpg_time(fields[6]) if fields[6] else None}
            if kind == 'pub':
                primary = None
        elif kind == 'fpr' and pending is not None and len(fields) > 9:
            fpr = fields[9].upper()
            if not pending['subkey']:
                primary = fpr
            pending['primary'] = primary or fpr
            keys[fpr] = pending
            pending = None
    return keys


def judge_signature_times(validsigs, keys, now=None, max_clock_skew=DEFAULT_MAX_CLOCK_SKEW):
    """Reasons why signatures are not valid at the time they claim to be made ([] if none).

    For each signature (``signer_fingerprint``, ``primary_fingerprint``, ``created``) the signing
    key and its primary key must be known in ``keys`` (:func:`parse_gpg_key_listing`), not
    revoked, created no later than the signature and not expired at the signature's time; and
    the signature must not be dated more than ``max_clock_skew`` seconds after ``now``.
    """
    now = time.time() if now is None else now
    reasons = []
    for sig in validsigs:
        created = sig.get('created')
        if created is None:
            reasons.append('signature by %s carries no readable creation time' % sig['signer_fingerprint'])
            continue
        if created > now + max_clock_skew:
            reasons.append('signature is dated %s, in the future (now %s, allowed clock skew %d s)'
                           % (_iso(created), _iso(now), max_clock_skew))
        fprs = [sig['signer_fingerprint']]
        if sig['primary_fingerprint'] not in fprs:
            fprs.append(sig['primary_fingerprint'])
        for fpr in fprs:
            role = 'signing key' if fpr == sig['signer_fingerprint'] else 'primary key'
            key = (keys or {}).get(fpr)
            if key is None:
                reasons.append('validity of %s %s is unknown (not in the imported keys)' % (role, fpr))
                continue
            if key['revoked']:
                reasons.append('%s %s is revoked' % (role, fpr))
            if key['created'] is None:
                reasons.append('creation time of %s %s is unknown' % (role, fpr))
            elif created < key['created']:
                reasons.append('signature is dated %s, before %s %s was created (%s)'
                               % (_iso(created), role, fpr, _iso(key['created'])))
            if key['expires'] is not None and created >= key['expires']:
                reasons.append('signature is dated %s, after %s %s expired (%s)'
                               % (_iso(created), role, fpr, _iso(key['expires'])))
    return reasons


def judge_gpg_status(status_text, pinned, keys=None, now=None, max_clock_skew=DEFAULT_MAX_CLOCK_SKEW):
    """Judge ``gpg --status-fd`` output against pinned fingerprints and key validity.

    Passes only when every signature in the file is good (one GOODSIG per NEWSIG), a VALIDSIG
    names a pinned fingerprint (as the signing key or as the primary key), no failing keyword
    appears, and every signature's creation time (from VALIDSIG) lies within the validity of
    its signing key and primary key (``keys``, see :func:`judge_signature_times`) and not in the
    future. Without ``keys`` the validity cannot be judged and the signature fails. The exit code
    of gpg is never consulted here.
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
            created = _gpg_time(fields[3]) if len(fields) >= 4 else None
            validsigs.append({'signer_fingerprint': signer, 'primary_fingerprint': primary,
                              'created': created, 'created_utc': _iso(created)})
    result = {
        'verdict': VERDICT_FAIL,
        'reason': '',
        'status': lines,
        'signers': validsigs,
        'signer_fingerprint': validsigs[0]['signer_fingerprint'] if validsigs else None,
        'primary_fingerprint': validsigs[0]['primary_fingerprint'] if validsigs else None,
        'signature_created': validsigs[0]['created_utc'] if validsigs else None,
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
    if len(validsigs) != goodsig:
        result['reason'] = '%d good signatures but %d VALIDSIG lines' % (goodsig, len(validsigs))
        return result
    unpinned = [s for s in validsigs
                if s['signer_fingerprint'] not in pinned and s['primary_fingerprint'] not in pinned]
    if unpinned:
        result['reason'] = ('good signature by key %s, which is not a pinned fingerprint'
                            % unpinned[0]['primary_fingerprint'])
        return result
    if keys is None:
        result['reason'] = 'validity of the signing key is unknown (no key listing); not trusted'
        return result
    time_reasons = judge_signature_times(validsigs, keys, now, max_clock_skew)
    if time_reasons:
        result['reason'] = '; '.join(time_reasons)
        return result
    result['verdict'] = VERDICT_OK
    result['reason'] = 'good signature by pinned key %s, made %s within the key\'s validity' % (
        validsigs[0]['primary_fingerprint'], validsigs[0]['created_utc'])
    return result


GPG_TIMEOUT = 600


class GpgVerifier:
    """Verify detached signatures in an isolated, temporary GNUPGHOME.

    Only the given key files are imported (each read as a regular file of bounded size and fed
    to gpg on stdin); keyservers and auto key retrieval are off. Signatures are read the same
    way and copied into the private home; the signed data reaches gpg on stdin from the
    caller's already-open descriptor. The home directory is removed (and its agent stopped) by
    :meth:`close`.
    """

    def __init__(self, key_files, gpg_binary='gpg', runner=None, now=None,
                 max_clock_skew=DEFAULT_MAX_CLOCK_SKEW):
        self.gpg = gpg_binary
        self.runner = runner or run_command
        self.key_files = list(key_files or [])
        self.home = None
        self.version = None
        self.error = None
        self.imported = []
        self.keys = None
        self.now = now
        self.max_clock_skew = max_clock_skew
        self._count = 0

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
            try:
                key_data = read_regular_file(key_file, KEY_FILE_LIMIT, 'key file')
            except InputError as exc:
                self.error = str(exc)
                return self
            args = self._base()
            args.extend(['--status-fd', '1', '--import'])
            try:
                rc, out, err = self.runner(args, data=key_data, timeout=GPG_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.error = 'importing key file %s timed out' % key_file
                return self
            if rc != 0 and 'IMPORT_OK' not in out:
                self.error = 'importing key file %s failed: %s' % (key_file, err.strip()[-300:])
                return self
            for line in out.splitlines():
                if line.startswith('[GNUPG:] IMPORT_OK '):
                    fields = line.split()
                    if len(fields) >= 4 and fields[3].upper() not in self.imported:
                        self.imported.append(fields[3].upper())
        args = self._base()
        args.extend(['--trust-model', 'always', '--with-colons', '--fixed-list-mode',
                     '--with-subkey-fingerprint', '--list-keys'])
        rc, out, err = self.runner(args, timeout=GPG_TIMEOUT)
        if rc == 0:
            self.keys = parse_gpg_key_listing(out)
        elif self.imported:
            self.error = 'listing the imported keys failed: %s' % err.strip()[-300:]
        else:
            self.keys = {}
        return self

    def verify(self, path, signature, pinned, data_fd=None):
        """Verify ``signature`` over the artifact (read from ``data_fd`` when given, else ``path``)."""
        started = time.monotonic()
        result = {'verdict': VERDICT_FAIL, 'signature_file': signature, 'pinned_fingerprints': sorted(pinned),
                  'status': [], 'signers': [], 'signer_fingerprint': None,
                  'primary_fingerprint': None, 'max_clock_skew': self.max_clock_skew}
        sig_data = None
        if not self.error and pinned:
            try:
                sig_data = read_regular_file(signature, SIGNATURE_FILE_LIMIT, 'signature file')
            except InputError as exc:
                result['reason'] = str(exc)
        if self.error:
            result['reason'] = self.error
        elif not pinned:
            result['reason'] = 'no pinned fingerprints configured; a signature cannot be trusted'
        elif sig_data is not None:
            result['signature_sha256'] = hashlib.sha256(sig_data).hexdigest()
            self._count += 1
            sig_copy = os.path.join(self.home, 'signature-%d' % self._count)
            handle = os.open(sig_copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), 0o600)
            with os.fdopen(handle, 'wb') as out:
                out.write(sig_data)
            args = self._base()
            args.extend(['--trust-model', 'always', '--status-fd', '1', '--verify', sig_copy, '-'])
            close_fd = False
            try:
                if data_fd is None:
                    data_fd, _st = open_regular_file(path, None, 'artifact')
                    close_fd = True
                else:
                    os.lseek(data_fd, 0, os.SEEK_SET)
                rc, out, _err = self.runner(args, stdin=data_fd, timeout=GPG_TIMEOUT)
            except InputError as exc:
                rc, out = None, ''
                result['reason'] = str(exc)
            except subprocess.TimeoutExpired:
                rc, out = None, ''
                result['reason'] = 'gpg timed out after %d seconds' % GPG_TIMEOUT
            finally:
                if close_fd:
                    os.close(data_fd)
            if rc is not None:
                result.update(judge_gpg_status(out, pinned, self.keys, self.now, self.max_clock_skew))
                result['gpg_rc'] = rc
                if result['verdict'] == VERDICT_OK and rc != 0:
                    result['verdict'] = VERDICT_FAIL
                    result['reason'] = 'gpg exited with %d despite a valid signature' % rc
                for sig in result['signers']:
                    for fpr_key, out_key in (('signer_fingerprint', 'key'), ('primary_fingerprint', 'primary_key')):
                        key = (self.keys or {}).get(sig[fpr_key])
                        if key:
                            sig[out_key + '_created'] = _iso(key['created'])
                            sig[out_key + '_expires'] = _iso(key['expires'])
                            sig[out_key + '_revoked'] = key['revoked']
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
