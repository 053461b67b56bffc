# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checksum files: GNU ``sha256sum``/``sha512sum`` and BSD ``SHA256 (name) = hex`` lines.

Names are compared in one canonical form; conflicting digests for one artifact name are refused
(a half-readable or ambiguous checksum file is not trusted).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

from ansible_collections.itsop.change.plugins.module_utils._artifact.digest import DIGEST_LENGTHS
from ansible_collections.itsop.change.plugins.module_utils._artifact.text import printable
from ansible_collections.itsop.change.plugins.module_utils._artifact.verdict import VerifyError


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
                              % (source, printable(name), algo, other['line'], printable(other['name']),
                                 entry['line'], printable(entry['name'])))
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
                                  % (source, entry['algorithm'], other['line'], printable(other['name']),
                                     entry['line'], printable(entry['name'])))
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
