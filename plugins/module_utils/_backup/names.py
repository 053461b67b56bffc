# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""File names that are not UTF-8, in module results.

Linux file names are bytes. The backup modules carry them as ``str`` decoded with
``surrogateescape``, which keeps every byte but leaves lone surrogates (``\\udcff``) in the text;
the controller refuses such a result ("Refusing to deserialize an invalid UTF8 string value") and
reports the task as failed even when the module did its work.

``safe_result`` rewrites every such string of a result (values and keys, at any depth) into its
*escaped form*: valid UTF-8 stays as it is and each byte that is not valid UTF-8 becomes the four
characters ``\\xNN`` (Python's ``backslashreplace``). Because a real name may itself contain
``\\x``, the escaped form alone is not lossless; the result therefore also gets
``escaped_names``: one ``{escaped, base64}`` pair per distinct rewritten string, ``base64`` being
the original bytes. A consumer that needs the exact name looks the escaped form up there.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import base64

#: at most this many pairs are listed in ``escaped_names`` (results are bounded lists anyway)
ESCAPED_LIMIT = 1000


def _raw(text):
    try:
        return text.encode('utf-8', 'surrogateescape')
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte (e.g. from JSON input)
        return text.encode('utf-8', 'surrogatepass')


def escaped(text):
    """The escaped form of a str that may hold surrogate-escaped bytes (unchanged when valid UTF-8)."""
    try:
        text.encode('utf-8')
        return text
    except UnicodeEncodeError:
        return _raw(text).decode('utf-8', 'backslashreplace')


def safe_result(result):
    """Return ``result`` with every string valid UTF-8, plus ``escaped_names`` when anything was rewritten."""
    pairs = {}

    def fix(value):
        if isinstance(value, str):
            try:
                value.encode('utf-8')
                return value
            except UnicodeEncodeError:
                raw = _raw(value)
                shown = raw.decode('utf-8', 'backslashreplace')
                if shown not in pairs and len(pairs) < ESCAPED_LIMIT:
                    pairs[shown] = base64.b64encode(raw).decode('ascii')
                return shown
        if isinstance(value, dict):
            return dict((fix(k), fix(v)) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return [fix(v) for v in value]
        if isinstance(value, bytes):
            return fix(value.decode('utf-8', 'surrogateescape'))
        return value

    out = fix(result)
    if pairs:
        out['escaped_names'] = [{'escaped': k, 'base64': v} for k, v in sorted(pairs.items())]
    return out
