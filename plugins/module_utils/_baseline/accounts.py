# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Accounts with uid 0 and the sudoers rules (files, entries, one digest)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib
import os


def uid0_accounts():
    names = []
    with open('/etc/passwd') as fh:
        for line in fh:
            parts = line.rstrip('\n').split(':')
            if len(parts) > 2 and parts[2].strip() == '0':
                names.append(parts[0])
    return sorted(names)


def sudoers():
    files = []
    if os.path.isfile('/etc/sudoers'):
        files.append('/etc/sudoers')
    if os.path.isdir('/etc/sudoers.d'):
        for name in sorted(os.listdir('/etc/sudoers.d')):
            # sudo skips names ending in ~ or containing a dot
            if name.endswith('~') or '.' in name:
                continue
            full = os.path.join('/etc/sudoers.d', name)
            if os.path.isfile(full):
                files.append(full)
    digest = hashlib.sha256()
    entries = []
    for path in files:
        with open(path, 'rb') as fh:
            data = fh.read()
        digest.update(path.encode() + b'\0' + data + b'\0')
        for line in data.decode('utf-8', 'replace').splitlines():
            text = ' '.join(line.split())
            if not text:
                continue
            if text.startswith('#') and not (text.startswith('#include') or text.startswith('#includedir')):
                continue
            entries.append(text)
    return dict(digest=digest.hexdigest(), entries=entries, files=files)
