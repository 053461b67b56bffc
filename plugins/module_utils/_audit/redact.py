# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Redaction of audit records: secrets never reach the audit log.

:class:`Redactor` copies a value into plain JSON types, replacing the values of secret-looking
keys, dropping keys that are never recorded and scrubbing every known secret (e.g. a vaulted
value) wherever it occurs in text.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import math
import re


#: Substrings (case-insensitive regular expressions) of mapping keys whose values are replaced.
DEFAULT_REDACT_PATTERNS = (
    "passw", "passphrase", "pwd", "secret", "token", "key", "private", "credential", "vault",
    "authorization", "cookie", "signature",
)
#: Keys dropped entirely (their values are never recorded), whatever their content.
DEFAULT_DROP_KEYS = ("ansible_env", "extra_vars")
REDACTED = "VALUE_REDACTED"
DROPPED = "NOT_RECORDED"


class Redactor:
    """Copy a value into plain JSON types, replacing secrets; the input is never modified.

    * keys matching one of ``patterns`` (case-insensitive regular expressions, searched) get
      their value replaced by ``VALUE_REDACTED``;
    * keys in ``drop_keys`` get ``NOT_RECORDED``;
    * keys starting with ``_ansible_`` (Ansible internals) are left out;
    * anything that is not a JSON type becomes its ``str()``; NaN/Infinity become strings;
    * **known secret values** (``add_secret()``; the audit callback adds every vaulted value of the
      play) are replaced wherever they occur inside any string or key, also when concatenated
      with other text (``conn=VALUE_REDACTED``), nested or in loop items; each line of a
      multi-line secret too. Values shorter than ``MIN_SECRET_LENGTH`` are not searched for
      (they would blank ordinary text);
    * ``secret_probe(value)``, when given, is asked about every value that is not a plain
      ``str``/``int``/``bool``/``None``: when it returns a string, that is a secret's plaintext
      (e.g. a vault-tagged value): the value is redacted and the secret learned.
    """

    MIN_SECRET_LENGTH = 4

    def __init__(self, patterns=None, drop_keys=None, max_depth=64, secret_probe=None):
        patterns = DEFAULT_REDACT_PATTERNS if patterns is None else patterns
        self.patterns = tuple(p for p in patterns if p)
        self._rx = re.compile("|".join("(?:%s)" % p for p in self.patterns), re.IGNORECASE) \
            if self.patterns else None
        self.drop_keys = frozenset(DEFAULT_DROP_KEYS if drop_keys is None else drop_keys)
        self.max_depth = max_depth
        self._cache = {}
        self._secrets = set()
        self._secret_rx = None
        self._probe = secret_probe

    def add_secret(self, text):
        """Learn a secret value; return True when it is new (and will be searched for)."""
        if not isinstance(text, str):
            return False
        text = str(text)
        pieces = [text] + [line.strip() for line in text.splitlines()]
        new = set(p for p in pieces if len(p) >= self.MIN_SECRET_LENGTH) - self._secrets
        if not new:
            return False
        self._secrets |= new
        # longest first, so a secret that contains another is replaced whole
        ordered = sorted(self._secrets, key=lambda s: (-len(s), s))
        self._secret_rx = re.compile("|".join(re.escape(s) for s in ordered))
        return True

    @property
    def secret_count(self):
        return len(self._secrets)

    def scrub(self, text):
        """Replace every known secret value inside ``text``."""
        if self._secret_rx is None:
            return text
        return self._secret_rx.sub(REDACTED, text)

    def key_action(self, key):
        """Return 0 (keep), 1 (redact value), 2 (drop value) or 3 (omit key) for a mapping key."""
        action = self._cache.get(key)
        if action is None:
            if key.startswith("_ansible_"):
                action = 3
            elif key in self.drop_keys:
                action = 2
            elif self._rx is not None and self._rx.search(key):
                action = 1
            else:
                action = 0
            if len(self._cache) < 10000:
                self._cache[key] = action
        return action

    def is_secret_key(self, key):
        return self.key_action(str(key)) in (1, 2)

    def redact(self, value, _depth=0):
        vt = type(value)
        if vt is str:
            return value if self._secret_rx is None else self._secret_rx.sub(REDACTED, value)
        if vt is bool or vt is int or value is None:
            return value
        if _depth > self.max_depth:
            return "NOT_RECORDED_TOO_DEEP"
        if self._probe is not None:
            plaintext = self._probe(value)
            if plaintext is not None:
                self.add_secret(plaintext)
                return REDACTED
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                skey = key if isinstance(key, str) else str(key)
                if self._secret_rx is not None:
                    skey = self._secret_rx.sub(REDACTED, skey)
                action = self.key_action(skey)
                if action == 0:
                    out[skey] = self.redact(item, _depth + 1)
                elif action == 1:
                    out[skey] = REDACTED
                elif action == 2:
                    out[skey] = DROPPED
            return out
        if isinstance(value, (list, tuple)):
            return [self.redact(item, _depth + 1) for item in value]
        if vt is float:
            if math.isnan(value) or math.isinf(value):
                return str(value)
            return value
        if isinstance(value, str):
            return self.scrub(str(value))
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return self.redact(float(value), _depth)
        if isinstance(value, (set, frozenset)):
            return [self.redact(item, _depth + 1) for item in sorted(value, key=str)]
        if isinstance(value, bytes):
            return self.scrub(value.decode("utf-8", "replace"))
        return self.scrub(str(value))
