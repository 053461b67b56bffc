# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one place where itsop.change reads files that a person or an outsider wrote.

Every change request, roster, policy file, checksum file and signature the collection or
``sopctl`` reads goes through here, so the same rules hold everywhere:

- ``read_regular_file(path, limit, what)``: only a regular file (a FIFO, device, socket or
  directory is refused without blocking: the file is opened ``O_NONBLOCK`` and checked with
  ``fstat`` on the open descriptor, so the file checked is the file read), at most ``limit``
  bytes (refused before it is read, and again if it grows while being read).
- ``load_yaml(text, source)``: YAML (and so JSON) with **no aliases or anchors** (a "billion
  laughs" document is refused at its first alias, in bounded time and memory), **no duplicate
  keys** (refused naming the key and both lines), a bounded nesting depth, and only plain
  data types (the safe loader's tags).
- ``load_json(text, source)``: JSON with duplicate keys refused.

Errors are ``InputError`` with a message that names the file and, where known, the line.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import errno
import json
import os
import stat

try:
    import yaml
    from yaml.nodes import MappingNode, SequenceNode
    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False

#: default size limit for documents written by people (change requests, rosters, policies)
DOCUMENT_LIMIT = 1024 * 1024
#: maximum nesting of mappings and sequences in a document
MAX_DEPTH = 64


class InputError(ValueError):
    """A file or document cannot be accepted; the message names what and where."""


def read_regular_file(path, limit=DOCUMENT_LIMIT, what='file'):
    """Return the bytes of ``path`` if it is a regular file of at most ``limit`` bytes."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0))
    except OSError as exc:
        raise InputError('%s %s: cannot open (%s)' % (what, path, exc.strerror or exc))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError('%s %s: not a regular file (%s); refusing to read it'
                             % (what, path, _kind(st.st_mode)))
        if st.st_size > limit:
            raise InputError('%s %s: %d bytes, larger than the limit of %d bytes'
                             % (what, path, st.st_size, limit))
        chunks = []
        total = 0
        while True:
            try:
                chunk = os.read(fd, min(1024 * 1024, limit + 1 - total))
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise InputError('%s %s: cannot read (%s)' % (what, path, exc.strerror or exc))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise InputError('%s %s: grew past the limit of %d bytes while being read'
                                 % (what, path, limit))
        return b''.join(chunks)
    finally:
        os.close(fd)


def _kind(mode):
    for test, name in ((stat.S_ISDIR, 'a directory'), (stat.S_ISFIFO, 'a FIFO'),
                       (stat.S_ISCHR, 'a character device'), (stat.S_ISBLK, 'a block device'),
                       (stat.S_ISSOCK, 'a socket')):
        if test(mode):
            return name
    return 'mode %o' % stat.S_IFMT(mode)


def decode_text(raw, source):
    """UTF-8 text (a BOM is accepted and dropped); InputError naming the byte offset."""
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise InputError('%s: not UTF-8 text (byte %d)' % (source, exc.start))
    return text[1:] if text.startswith(u'\ufeff') else text


if HAS_YAML:
    class StrictSafeLoader(yaml.SafeLoader):
        """SafeLoader that refuses aliases/anchors and duplicate keys and bounds the depth."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise InputError('line %d, column %d: YAML aliases (*%s) are not accepted'
                                 % (event.start_mark.line + 1, event.start_mark.column + 1,
                                    event.anchor))
            event = self.peek_event()
            anchor = getattr(event, 'anchor', None)
            if anchor is not None:
                raise InputError('line %d, column %d: YAML anchors (&%s) are not accepted'
                                 % (event.start_mark.line + 1, event.start_mark.column + 1, anchor))
            self._itsop_depth = getattr(self, '_itsop_depth', 0) + 1
            try:
                if self._itsop_depth > MAX_DEPTH:
                    raise InputError('line %d: nested deeper than %d levels'
                                     % (event.start_mark.line + 1, MAX_DEPTH))
                return super(StrictSafeLoader, self).compose_node(parent, index)
            finally:
                self._itsop_depth -= 1

        def construct_mapping(self, node, deep=False):
            if isinstance(node, MappingNode):
                seen = {}
                for key_node, _value in node.value:
                    if key_node.tag == u'tag:yaml.org,2002:merge':
                        raise InputError('line %d: YAML merge keys (<<) are not accepted'
                                         % (key_node.start_mark.line + 1))
                    key = self.construct_object(key_node, deep=True)
                    try:
                        hash(key)
                    except TypeError:
                        raise InputError('line %d: a mapping key must be a scalar'
                                         % (key_node.start_mark.line + 1))
                    line = key_node.start_mark.line + 1
                    if key in seen:
                        raise InputError('duplicate key %r at lines %d and %d'
                                         % (key, seen[key], line))
                    seen[key] = line
            return super(StrictSafeLoader, self).construct_mapping(node, deep=deep)


def load_yaml(text, source='document'):
    """Parse YAML/JSON text strictly (see module docstring); InputError names source and line."""
    if not HAS_YAML:
        return load_json(text, source)
    try:
        return yaml.load(text, Loader=StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except InputError as exc:
        raise InputError('%s: %s' % (source, exc))
    except yaml.YAMLError as exc:
        raise InputError('%s: not valid YAML (%s)' % (source, ' '.join(str(exc).split())))
    except RecursionError:
        raise InputError('%s: nested too deeply' % source)


def _refuse_duplicates(source):
    def hook(pairs):
        out = {}
        for key, value in pairs:
            if key in out:
                raise InputError('%s: duplicate key %r' % (source, key))
            out[key] = value
        return out
    return hook


def load_json(text, source='document'):
    """Parse JSON with duplicate keys refused; InputError names source and position."""
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates(source))
    except InputError:
        raise
    except ValueError as exc:
        raise InputError('%s: not valid JSON (%s)' % (source, exc))
    except RecursionError:
        raise InputError('%s: nested too deeply' % source)


def load_document_file(path, what='document', limit=DOCUMENT_LIMIT):
    """read_regular_file + decode_text + load_yaml in one call."""
    raw = read_regular_file(path, limit=limit, what=what)
    return load_yaml(decode_text(raw, '%s %s' % (what, path)), '%s %s' % (what, path))
