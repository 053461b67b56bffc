# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The snapshot record: its key and HMAC, reading and checking it, and the complete snapshots of a label."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib
import hmac
import json
import os

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import (
    FORMAT_RECORD, INCOMPLETE_PREFIX, RECORD_KEY_MIN, RECORD_LIMIT, RECORD_MAC_DOMAIN, RECORD_NAME)
from ansible_collections.itsop.change.plugins.module_utils._backup.store import read_store_json


def record_key_bytes(key):
    """The record key as bytes; None when no key is configured. BackupError when it is too short."""
    if key is None or key == '':
        return None
    raw = key.encode('utf-8') if isinstance(key, str) else bytes(key)
    raw = raw.strip()
    if len(raw) < RECORD_KEY_MIN:
        raise BackupError('record_key is too short: %d characters, at least %d are needed (e.g. the output '
                          'of "openssl rand -hex 32")' % (len(raw), RECORD_KEY_MIN))
    return raw


def _record_body(record):
    body = dict(record)
    body.pop('signature', None)
    return RECORD_MAC_DOMAIN + json.dumps(body, sort_keys=True, separators=(',', ':'),
                                          ensure_ascii=True).encode('ascii')


def record_key_id(key):
    """A short public name of a key (HMAC of a fixed text): tells which key signed, reveals nothing of it."""
    return hmac.new(key, b'itsop-backup-record-key-id', hashlib.sha256).hexdigest()[:16]


def sign_record(record, key):
    """Add ``signature`` {alg, key_id, mac} to ``record`` (HMAC-SHA256 over everything else in it)."""
    record.pop('signature', None)
    record['signature'] = {'alg': 'HMAC-SHA256', 'key_id': record_key_id(key),
                           'mac': hmac.new(key, _record_body(record), hashlib.sha256).hexdigest()}
    return record


def check_record_signature(record, key, path):
    """Authenticate a loaded record; return True (checked), False (no key configured). BackupError when forged.

    With a key, an unsigned record is refused: whoever can write the store could otherwise drop the
    signature together with the rest.
    """
    sig = record.get('signature')
    if key is None:
        return False
    if not isinstance(sig, dict) or sig.get('alg') != 'HMAC-SHA256' or not isinstance(sig.get('mac'), str):
        raise BackupError('snapshot record %s is not signed, but a record key is configured: refusing it (an '
                          'unsigned record can be rewritten by whoever can write the backup store)' % path,
                          path=path)
    expected = hmac.new(key, _record_body(record), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sig['mac']):
        kid = record_key_id(key)
        other = ' (it names key %s, the configured key is %s)' % (sig.get('key_id'), kid) \
            if sig.get('key_id') != kid else ''
        raise BackupError('snapshot record %s fails its HMAC check%s: it was changed after the snapshot was '
                          'taken, or signed with another key; refusing it' % (path, other), path=path)
    return True


def snapshot_dirs(dest, label):
    """Complete snapshots of ``label`` under ``dest`` as (record, path), oldest first."""
    base = os.path.join(dest, label)
    found = []
    if not os.path.isdir(base):
        return found
    for name in os.listdir(base):
        if name.startswith('.'):
            continue
        path = os.path.join(base, name)
        record_path = os.path.join(path, RECORD_NAME)
        if not os.path.isfile(record_path):
            continue
        try:
            record = load_record(path)
        except BackupError:
            continue
        if record.get('label') != label:
            continue  # a record copied in from another label
        found.append((record, path))
    found.sort(key=lambda item: (item[0].get('created_epoch', 0), item[0].get('snapshot_id', '')))
    return found


def load_record(snapshot_dir, key=None):
    """The snapshot record of ``snapshot_dir``, authenticated with ``key`` (bytes) when one is given."""
    return open_record(snapshot_dir, key)[0]


def open_record(snapshot_dir, key=None):
    """``(record, authenticated)``: the record, checked against ``key`` when one is configured."""
    path = os.path.join(snapshot_dir, RECORD_NAME)
    if os.path.basename(os.path.normpath(snapshot_dir)).startswith(INCOMPLETE_PREFIX):
        raise BackupError('%s is an incomplete snapshot (its run did not finish)' % snapshot_dir)
    record = read_store_json(path, 'snapshot record', RECORD_LIMIT)
    if not isinstance(record, dict) or record.get('format') != FORMAT_RECORD:
        raise BackupError('snapshot record %s has an unknown format' % path)
    for key_name in ('archive', 'manifest', 'packages'):
        entry = record.get(key_name)
        if entry is not None and not isinstance(entry, dict):
            raise BackupError('snapshot record %s: %s is not an object' % (path, key_name))
        name = (entry or {}).get('name')
        if name is not None and (not isinstance(name, str) or not name or '/' in name or name.startswith('.')):
            raise BackupError('snapshot record %s names an invalid %s file %r' % (path, key_name, name))
    if not (record.get('archive') or {}).get('name') or not (record.get('manifest') or {}).get('name'):
        raise BackupError('snapshot record %s lacks the archive or manifest entry' % path)
    for key_name, fields in (('archive', ('sha256',)), ('manifest', ('sha256',))):
        for field in fields:
            if not isinstance(record[key_name].get(field), str):
                raise BackupError('snapshot record %s: %s.%s is missing or not a string' % (path, key_name, field))
    totals = record.get('totals')
    if not isinstance(totals, dict) or not all(isinstance(totals.get(k), int) for k in ('entries', 'files', 'bytes')):
        raise BackupError('snapshot record %s: totals must hold the integers entries, files and bytes' % path)
    for field in ('snapshot_id', 'label'):
        if not isinstance(record.get(field), str):
            raise BackupError('snapshot record %s: %s is missing or not a string' % (path, field))
    authenticated = check_record_signature(record, key, path)
    if record.get('snapshot_id') != os.path.basename(os.path.normpath(snapshot_dir)):
        raise BackupError('snapshot record %s belongs to snapshot %r, not to the directory it is in; refusing it'
                          % (path, record.get('snapshot_id')), path=path)
    return record, authenticated
