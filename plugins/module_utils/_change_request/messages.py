# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Field paths and value descriptions in change request error messages.

Every error is a string ``"<field path>: <reason>"``, for example
``"window.end: must be after window.start"`` or ``"items.packages[0].version: is required"``.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import re


def format_path(parts):
    """['items', 'packages', 0, 'version'] -> 'items.packages[0].version' ('(root)' when empty)."""
    out = ''
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += '[%d]' % part
        else:
            name = str(part)
            if not _PLAIN_KEY_RE.match(name):  # a control character, a look-alike letter, ...
                name = json.dumps(name)
            out += ('.' if out else '') + name
    return out or '(root)'


_PLAIN_KEY_RE = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.-]*\Z')


def join_path(path, name):
    return [*path, name]


def type_name(value):
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'boolean'
    if isinstance(value, int):
        return 'integer'
    if isinstance(value, float):
        return 'number'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, list):
        return 'array'
    if isinstance(value, dict):
        return 'object'
    return type(value).__name__


def is_type(value, expected):
    actual = type_name(value)
    if expected == 'number':
        return actual in ('integer', 'number')
    return actual == expected


def short(value):
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + '...'


def unique(messages):
    out = []
    for msg in messages:
        if msg not in out:
            out.append(msg)
    return out
