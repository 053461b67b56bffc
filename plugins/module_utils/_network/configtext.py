# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Device configuration text that leaves the device: which lines carry a secret, and the
before/after difference of a change with those secrets hidden (evidence, report and archive
never hold a password, a community or a key)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import difflib
import re

# a configuration line that sets a secret: the keyword and the value after it
SECRET_LINE = re.compile(r'(?i)\b(password|secret|community|key-string|authentication-key'
                         r'|message-digest-key\s+\d+\s+md5)(\s+(?:\d\s+)?)(\S+)')
REDACTED = '<redacted>'
MAX_DIFF_LINES = 400


def secret_in(text):
    """The first match of a line setting a secret, or None."""
    return SECRET_LINE.search(text or '')


def redact(line):
    """The line with the value of every secret it sets replaced by ``<redacted>``."""
    return SECRET_LINE.sub(lambda m: m.group(1) + m.group(2) + REDACTED, line)


def diff(before, after, before_name='before', after_name='after', context=2):
    """Unified diff of two configuration texts, secrets redacted, at most MAX_DIFF_LINES lines
    (a last line says how many were left out)."""
    lines = [redact(line.rstrip('\n')) for line in difflib.unified_diff(
        (before or '').splitlines(), (after or '').splitlines(), before_name, after_name, n=context, lineterm='')]
    if len(lines) > MAX_DIFF_LINES:
        left_out = len(lines) - MAX_DIFF_LINES
        del lines[MAX_DIFF_LINES:]
        lines.append('... %d more lines' % left_out)
    return '\n'.join(lines) + ('\n' if lines else '')
