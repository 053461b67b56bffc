# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The manifest: JSON Lines written while the archive streams, read back strictly."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib
import json
import os

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import FORMAT_MANIFEST, MANIFEST_LIMIT
from ansible_collections.itsop.change.plugins.module_utils._backup.store import open_store_file


def manifest_emitter(manifest):
    digest = hashlib.sha256()
    size = [0]
    encode = json.JSONEncoder(separators=(',', ':'), check_circular=False).encode

    def emit(obj):
        """Write one manifest line: a dict, or a line already encoded by ``_FILE_LINE``."""
        line = (obj if obj.__class__ is str else encode(obj) + '\n').encode('utf-8', 'surrogateescape')
        digest.update(line)
        manifest.write(line)
        size[0] += len(line)

    return emit, digest, size


_SCAN_JSON = json.JSONDecoder().scan_once  # the C scanner json.loads uses, without its per-call overhead


def _json_line(text):
    """One JSON value filling the line (as json.loads would accept it; its error message otherwise)."""
    try:
        obj, end = _SCAN_JSON(text, 0)
    except StopIteration:
        return json.loads(text)  # leading blanks, or not JSON: json.loads accepts it or says why
    if end != len(text) and text[end:].strip():
        return json.loads(text)  # raises 'Extra data'
    return obj


def iter_manifest(path, limit=None):
    """Yield the manifest's header, then its entries; raises BackupError on any damage.

    The manifest must be a regular file of at most ``limit`` bytes (default MANIFEST_LIMIT).
    """
    fd, _st = open_store_file(path, 'manifest', MANIFEST_LIMIT if limit is None else limit)
    with os.fdopen(fd, 'rb') as handle:
        first = True
        ended = False
        for lineno, line in enumerate(handle, 1):
            if ended:
                raise BackupError('manifest %s has data after its end marker (line %d)' % (path, lineno))
            try:
                obj = _json_line(line.decode('utf-8', 'surrogateescape'))
            except ValueError as exc:
                raise BackupError('manifest %s is damaged at line %d: %s' % (path, lineno, exc)) from None
            if first:
                if not isinstance(obj, dict) or obj.get('format') != FORMAT_MANIFEST:
                    raise BackupError('manifest %s does not start with an %s header' % (path, FORMAT_MANIFEST))
                first = False
                yield obj
                continue
            if not isinstance(obj, dict):
                raise BackupError('manifest %s is damaged at line %d' % (path, lineno))
            if obj.get('end'):
                ended = True
                continue
            if obj.get('path').__class__ is not str or obj.get('type').__class__ is not str:
                raise BackupError('manifest %s is damaged at line %d: no path or type' % (path, lineno))
            yield obj
        if first or not ended:
            raise BackupError('manifest %s is truncated (no end marker)' % path)
