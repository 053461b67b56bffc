# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Characters in a change request: plain-ASCII identifiers and text without controls.

Identifiers (person ids, change ids) are plain ASCII matched in full: a look-alike letter from
another script or a trailing newline is named, never accepted. No string may carry a control
character or a bidirectional override (they rewrite what a terminal or a page shows); only the
free-text fields may span lines.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import math
import unicodedata

from ansible_collections.itsop.change.plugins.module_utils._change_request.messages import (
    format_path,
    join_path,
    short,
    type_name,
)
from ansible_collections.itsop.change.plugins.module_utils._change_request.validator import pattern_matches


#: fields that may hold several lines of text (tab, CR and LF allowed)
FREE_TEXT_FIELDS = (
    ('description',), ('reason', 'details'), ('rollback', 'plan'),
    ('items', 'config_files', None, 'content'), ('items', 'network_config', 'lines'),
    ('items', 'network_config', 'template'),
    ('test_plan', 'functional', None, 'body_contains'), ('test_plan', 'functional', None, 'command', None),
)
_MULTILINE_OK = '\t\n\r'
#: bidirectional embeddings, overrides and isolates, the Arabic letter mark (Trojan Source)
_BIDI_CONTROLS = frozenset('\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069')


def describe_character(char):
    """'U+0430 CYRILLIC SMALL LETTER A' (or the code point alone when it has no name)."""
    name = unicodedata.name(char, '')
    return 'U+%04X%s' % (ord(char), ' ' + name if name else '')


def bad_characters(value, multiline):
    """The first character ``value`` must not contain, as (index, char), or None."""
    for index, char in enumerate(value):
        if multiline and char in _MULTILINE_OK:
            continue
        if char in _BIDI_CONTROLS:
            return index, char
        category = unicodedata.category(char)
        if category in ('Cc', 'Zl', 'Zp', 'Cs') or (category == 'Cf' and not multiline):
            return index, char
    return None


def text_problem(value, multiline=False):
    """None when ``value`` is acceptable text, else which character is not and where.

    One-line text (``multiline`` false) may hold no control (Cc), format (Cf: zero-width and bidi
    characters), line/paragraph separator or surrogate character; multi-line text may also hold
    tab, CR and LF but still no other control character and no bidi control.
    """
    bad = bad_characters(value, multiline)
    if not bad:
        return None
    return 'contains %s at position %d (%s)' % (
        describe_character(bad[1]), bad[0],
        'control and bidirectional override characters are not accepted' if multiline
        else 'one line of text without control or format characters')


def _is_free_text(path):
    for pattern in FREE_TEXT_FIELDS:
        if len(pattern) == len(path) and all(pattern[i] is None or pattern[i] == path[i] for i in range(len(path))):
            return True
    return False


def character_errors(value, path):
    out = []
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            if isinstance(key, str) and bad_characters(key, False):
                index, char = bad_characters(key, False)
                out.append('%s: field name contains %s at position %d'
                           % (format_path(join_path(path, key)), describe_character(char), index))
                continue
            out.extend(character_errors(value[key], join_path(path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(character_errors(item, join_path(path, index)))
    elif isinstance(value, str):
        problem = text_problem(value, _is_free_text(path))
        if problem:
            out.append('%s: %s' % (format_path(path), problem))
    elif isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        # YAML .nan/.inf: passes every minimum/maximum comparison and is not JSON
        out.append('%s: must be a finite number, found %s' % (format_path(path), value))
    return out


def id_problem(value, pattern):
    """None when ``value`` is an identifier matching ``pattern`` in full; else why it is not.

    Identifiers (person ids, change ids) are plain ASCII: a look-alike letter from another
    script, such as a Cyrillic a (U+0430) in a Latin name, or a trailing newline is named, never
    accepted.
    """
    if not isinstance(value, str):
        return 'must be a string, found %s' % type_name(value)
    for index, char in enumerate(value):
        if ord(char) > 126 or ord(char) < 33:
            return ('%s contains %s at position %d; ids are plain ASCII matching %s'
                    % (short(value), describe_character(char), index, pattern))
    if not pattern_matches(pattern, value):
        return '%s does not match %s' % (short(value), pattern)
    return None
