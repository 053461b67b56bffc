# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Names from artifacts, checksum files and archives made safe to show.

A member name inside a package, or a name in a checksum file, is data chosen by whoever built
it: control and bidirectional characters are escaped and the length bounded before it reaches
a terminal, a log or a page.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re


_UNPRINTABLE_RE = re.compile(u'[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]')


def printable(text, limit=200):
    """``text`` safe for a terminal or a page: control and bidi characters escaped, bounded."""
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'backslashreplace')
    text = _UNPRINTABLE_RE.sub(lambda m: '\\u%04x' % ord(m.group(0)), text)
    text = text.encode('utf-8', 'backslashreplace').decode('utf-8')
    return text if len(text) <= limit else text[:limit] + '...'
