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

import calendar
import datetime
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time

from ansible_collections.itsop.change.plugins.module_utils.artifact_unpack import (
    Unpacker,
    UnpackError,
    printable,
)
from ansible_collections.itsop.change.plugins.module_utils.safe_input import (
    InputError,
    open_regular_file,
    read_regular_file,
)

VERDICT_OK = 'pass'
VERDICT_FAIL = 'fail'
VERDICT_NOT_REQUESTED = 'not_requested'

RECORD_KIND = 'itsop.change.artifact_verification'
RECORD_VERSION = 1

DEFAULT_BUFFER_SIZE = 4 * 1024 * 1024
#: Size limits of the files the verifier reads (every one must be a regular file).
DEFAULT_MAX_ARTIFACT_SIZE = 64 * 1024 ** 3   # artifacts are hashed in a stream
CHECKSUM_FILE_LIMIT = 16 * 1024 * 1024
SIGNATURE_FILE_LIMIT = 1024 * 1024
KEY_FILE_LIMIT = 16 * 1024 * 1024
#: Default wall-time limit for unpacking one artifact before the scan (seconds).
DEFAULT_UNPACK_TIMEOUT = 600
#: Default tolerated clock skew for signatures dated in the future (seconds).
DEFAULT_MAX_CLOCK_SKEW = 300
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

def hash_file(path, algorithms=('sha256',), buffer_size=DEFAULT_BUFFER_SIZE, limit=None,
              what='artifact'):
    """Hash ``path`` in one streaming pass.

    The file is opened ``O_NONBLOCK`` and must be a regular file (``fstat`` on the open
    descriptor; a FIFO or device raises :class:`InputError` without blocking) of at most
    ``limit`` bytes; the digests are computed from that descriptor, so the file checked is the
    file hashed. Returns ``{'size', 'digests', 'seconds', 'identity'}`` where ``identity`` is
    :func:`file_identity` of the hashed file.
    """
    fd, st = open_regular_file(path, limit, what)
    try:
        result = hash_fd(fd, algorithms, buffer_size, limit=limit, what='%s %s' % (what, path))
    finally:
        os.close(fd)
    result['identity'] = file_identity(st)
    return result


def file_identity(st):
    """What must not change while a file is verified (ctime catches a reset mtime too)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def hash_fd(fd, algorithms=('sha256',), buffer_size=DEFAULT_BUFFER_SIZE, limit=None, what='file'):
    """Hash an open descriptor from its current offset to its end (see :func:`hash_file`).

    Reads with ``readinto`` into one reused buffer (no per-chunk allocation) and feeds every
    requested algorithm from a memoryview.
    """
    hashers = [(name, hashlib.new(name)) for name in sorted(set(algorithms))]
    buf = bytearray(buffer_size)
    view = memoryview(buf)
    size = 0
    started = time.monotonic()
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    except (AttributeError, OSError):
        pass
    handle = os.fdopen(os.dup(fd), 'rb', buffering=0)
    with handle:
        readinto = handle.readinto
        updates = [h.update for _name, h in hashers]
        while True:
            count = readinto(buf)
            if not count:
                break
            size += count
            if limit is not None and size > limit:
                raise InputError('%s: grew past the limit of %d bytes while being read' % (what, limit))
            chunk = view[:count] if count < buffer_size else buf
            for update in updates:
                update(chunk)
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

_BSD_LINE = re.compile(r'^([A-Za-z0-9-]+)\s*\((.*)\)\s*=\s*([0-9a-fA-F]*)\s*$')
_GNU_LINE = re.compile(r'^(\\?)([0-9a-fA-F]+) ([ *])(.+)$')
_BSD_ALGORITHMS = {'SHA256': 'sha256', 'SHA2-256': 'sha256', 'SHA512': 'sha512', 'SHA2-512': 'sha512'}
# Digest lengths of algorithms that are recognised but not trusted (their lines are ignored).
_IGNORED_LENGTHS = {32: 'md5', 40: 'sha1', 56: 'sha224', 96: 'sha384'}
_IGNORED_BSD = ('MD5', 'SHA1', 'SHA224', 'SHA384', 'SHA2-224', 'SHA2-384', 'SHA512-224', 'SHA512-256',
                'SHA3-256', 'SHA3-512', 'BLAKE2B', 'BLAKE2B-256', 'BLAKE2B-512', 'SM3', 'CRC32')


def normalize_checksum_name(name):
    """The one canonical form of a file name in a checksum file or an artifact name.

    Drops one leading ``*`` (the binary marker, also when written after two spaces), ``./``
    prefixes and ``.`` components, and collapses repeated slashes: ``./a.bin``, ``*a.bin``,
    ``.//a.bin`` and ``a.bin`` are one name; so are names with spaces or tabs before or after
    them (``<hex>   a.bin`` with three spaces). ``..`` components are kept (they never match a
    plain artifact name).
    """
    text = name.strip(' \t')
    text = text[1:].lstrip(' \t') if text.startswith('*') else text
    absolute = text.startswith('/')
    parts = [p for p in text.split('/') if p not in ('', '.')]
    return ('/' if absolute else '') + '/'.join(parts)


def _unescape_gnu(name, lineno):
    out = []
    index = 0
    while index < len(name):
        char = name[index]
        if char == '\\':
            nxt = name[index + 1:index + 2]
            if nxt not in ('\\', 'n', 'r'):
                raise VerifyError('line %d: invalid escape in file name' % lineno)
            out.append({'\\': '\\', 'n': '\n', 'r': '\r'}[nxt])
            index += 2
        else:
            out.append(char)
            index += 1
    return ''.join(out)


def parse_checksum_entries(text, source='checksum file'):
    """Parse a checksum file into a list of entries.

    Accepts GNU ``sha256sum``/``sha512sum`` lines (``<hex>  <name>`` or ``<hex> *<name>``, with
    the backslash escaping of coreutils) and BSD/``--tag``/OpenSSL lines (``SHA256 (<name>) =
    <hex>``). Blank lines, ``#`` comments and lines that are no entry at all are skipped; MD5,
    SHA-1, SHA-224 and SHA-384 entries are recognised and ignored (not trusted). A line that is
    an entry but cannot be read (digest of the wrong length, bad escape, empty name) raises
    :class:`VerifyError` naming the line: a half-readable checksum file is not trusted.

    Each entry is ``{'line', 'name' (as written), 'key' (normalised), 'algorithm', 'digest'}``.
    """
    entries = []
    if text.startswith(u'\ufeff'):
        text = text[1:]
    for lineno, raw in enumerate(text.split('\n'), 1):
        line = raw[:-1] if raw.endswith('\r') else raw
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        match = _BSD_LINE.match(line.strip())
        if match and match.group(1).upper() in _BSD_ALGORITHMS:
            algo = _BSD_ALGORITHMS[match.group(1).upper()]
            name, digest = match.group(2), match.group(3).lower()
            if len(digest) != DIGEST_LENGTHS[algo]:
                raise VerifyError('%s line %d: %s digest has %d hex digits, expected %d'
                                  % (source, lineno, algo, len(digest), DIGEST_LENGTHS[algo]))
        elif match and match.group(1).upper() in _IGNORED_BSD:
            continue
        else:
            match = _GNU_LINE.match(line)
            if not match:
                continue
            escaped, digest, name = match.group(1), match.group(2).lower(), match.group(4)
            if len(digest) in _IGNORED_LENGTHS:
                continue
            algo = {64: 'sha256', 128: 'sha512'}.get(len(digest))
            if algo is None:
                raise VerifyError('%s line %d: digest has %d hex digits; expected 64 (sha256) or 128 '
                                  '(sha512)' % (source, lineno, len(digest)))
            if escaped:
                name = _unescape_gnu(name, lineno)
        key = normalize_checksum_name(name)
        if not key:
            raise VerifyError('%s line %d: entry without a file name' % (source, lineno))
        entries.append({'line': lineno, 'name': name, 'key': key, 'algorithm': algo, 'digest': digest})
    return entries


def select_checksum_entries(entries, name, source='checksum file'):
    """The entries that apply to artifact ``name``, refusing conflicts.

    Names are compared in normalised form (:func:`normalize_checksum_name`). Entries for exactly
    that name are used; only when there is none, entries whose last path component is the name
    (``dist/pkg.tar.gz`` for ``pkg.tar.gz``). All chosen entries of one algorithm must carry the
    same digest: two different digests for one name (``a.bin`` and ``./a.bin``, or ``amd64/x.deb``
    and ``arm64/x.deb`` for ``x.deb``) raise :class:`VerifyError` naming both lines. The same
    digest listed twice is accepted (it cannot make a different file pass) and reported in
    ``duplicates``.

    Returns ``{'entries': [...], 'digests': {algorithm: hex}, 'duplicates': int, 'match': ...}``
    with ``match`` ``exact``, ``basename`` or ``None`` (no entry).
    """
    key = normalize_checksum_name(name)
    chosen = [e for e in entries if e['key'] == key]
    match = 'exact' if chosen else None
    if not chosen and '/' not in key:
        chosen = [e for e in entries if e['key'].rsplit('/', 1)[-1] == key]
        match = 'basename' if chosen else None
    digests = {}
    first = {}
    duplicates = 0
    for entry in chosen:
        algo = entry['algorithm']
        if algo not in digests:
            digests[algo] = entry['digest']
            first[algo] = entry
        elif digests[algo] != entry['digest']:
            other = first[algo]
            raise VerifyError('%s lists %s with conflicting %s digests: line %d (%s) and line %d (%s)'
                              % (source, _printable(name), algo, other['line'], _printable(other['name']),
                                 entry['line'], _printable(entry['name'])))
        else:
            duplicates += 1
    # Names that differ only in letter case are one file on a case-insensitive file system.
    if chosen:
        folded = key.casefold()
        for entry in entries:
            entry_key = entry['key'] if match == 'exact' else entry['key'].rsplit('/', 1)[-1]
            if entry in chosen or entry_key.casefold() != folded:
                continue
            want = digests.get(entry['algorithm'])
            if want is not None and want != entry['digest']:
                other = first[entry['algorithm']]
                raise VerifyError('%s lists names that differ only in letter case with conflicting %s '
                                  'digests: line %d (%s) and line %d (%s)'
                                  % (source, entry['algorithm'], other['line'], _printable(other['name']),
                                     entry['line'], _printable(entry['name'])))
    return {'entries': chosen, 'digests': digests, 'duplicates': duplicates, 'match': match}


def parse_checksum_text(text):
    """Parse a checksum file. Returns ``{normalised name: [(algorithm, hex), ...]}``.

    Kept for callers of the earlier API; see :func:`parse_checksum_entries`.
    """
    out = {}
    for entry in parse_checksum_entries(text):
        out.setdefault(entry['key'], []).append((entry['algorithm'], entry['digest']))
    return out


def lookup_checksum(entries, name):
    """``(algorithm, hex)`` pairs for ``name`` from :func:`parse_checksum_text` output.

    Raises :class:`VerifyError` on conflicting digests; see :func:`select_checksum_entries`.
    """
    flat = []
    for key, values in entries.items():
        for algo, digest in values:
            flat.append({'line': 0, 'name': key, 'key': key, 'algorithm': algo, 'digest': digest})
    found = select_checksum_entries(flat, name)
    return sorted(found['digests'].items())


def _printable(text, limit=200):
    """``text`` safe for a terminal or a page: control and bidi characters escaped, bounded."""
    return printable(text, limit)


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


def _default_runner(args, data=None, env=None, timeout=None, stdin=None):
    """Run a command without a shell in the C locale; returns ``(rc, stdout, stderr)``.

    ``data`` (bytes) or ``stdin`` (an open descriptor) is the program's standard input; without
    either it reads from /dev/null.
    """
    run_env = dict(os.environ)
    run_env.update({'LC_ALL': 'C', 'LANG': 'C'})
    run_env.update(env or {})
    if data is not None:
        kwargs = {'input': data}
    else:
        kwargs = {'stdin': stdin if stdin is not None else subprocess.DEVNULL}
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=run_env, timeout=timeout, check=False, **kwargs)
    return (proc.returncode, proc.stdout.decode('utf-8', 'replace'),
            proc.stderr.decode('utf-8', 'replace'))


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
        self.runner = runner or _default_runner
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


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------

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
                            % (_printable(name), cfile)))
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
                              % (mismatched[0], _printable(name), check['file']))
                    check.update(_check(VERDICT_FAIL, reason))
                else:
                    check.update(_check(VERDICT_OK, 'matches entry for %s' % _printable(name)))
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
                error = '%s: cannot unpack (%s)' % (_printable(res['name']), exc)
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
