# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one place where itsop.change reads files that a person or an outsider wrote.

Every change request, roster, policy file, checksum file and signature the collection or
``sopctl`` reads goes through here, so the same rules hold everywhere:

- ``read_regular_file(path, limit, what)``: only a regular file (a FIFO, device, socket or
  directory is refused without being opened: ``stat`` before ``open``; then the file is opened
  ``O_NONBLOCK | O_NOCTTY`` and checked again with ``fstat`` on the open descriptor, same device
  and inode, so the file checked is the file read), at most ``limit`` bytes (refused before it
  is read, and again if it grows while being read).
- ``open_regular_file(path, limit, what)``: the same checks, returning the open descriptor
  and its ``fstat`` for callers that stream a large file (artifact hashing).
- ``load_yaml(text, source)``: YAML (and so JSON) with **no aliases or anchors** (a "billion
  laughs" document is refused at its first alias, in bounded time and memory), **no merge
  keys**, **no duplicate keys** (refused naming the key and both lines), a bounded nesting
  depth, and only plain data types (the safe loader's tags); a value the loader cannot build
  (an integer of more than 4300 digits, a date such as 2026-13-45) is an ``InputError`` naming
  its line, never another exception; at most ``max_nodes`` values (default MAX_NODES), which
  bounds the parse time of a document within its size limit.
- ``load_json(text, source)``: JSON with duplicate keys refused naming the key and both lines,
  and the same bounded depth.

Errors are ``InputError`` with a message that names the file and, where known, the line.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import errno
import json
import json.decoder
import json.scanner
import os
import re
import stat

try:
    import yaml
    from yaml.nodes import MappingNode
    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False

#: default size limit for documents written by people (change requests, rosters, policies)
DOCUMENT_LIMIT = 1024 * 1024
#: maximum nesting of mappings and sequences in a document
MAX_DEPTH = 64
#: default maximum number of values (scalars, mappings, sequences) in a YAML document: the pure
#: Python parser needs tens of microseconds per value, so this bounds the time a document within
#: its size limit can take (a change request has ~200 values, a roster ~11 per person)
MAX_NODES = 20000


class InputError(ValueError):
    """A file or document cannot be accepted; the message names what and where."""


def open_regular_file(path, limit=DOCUMENT_LIMIT, what='file'):
    """Open ``path`` for reading if it is a regular file of at most ``limit`` bytes (None: no limit).

    Returns ``(fd, st)``: the open descriptor (the caller closes it) and its ``fstat``. The path
    is checked with ``stat`` *before* it is opened, so a device, FIFO or socket is never opened
    (opening some devices acts on its own: a watchdog, a tape drive, a terminal), then opened
    ``O_NONBLOCK | O_NOCTTY`` and checked again with ``fstat`` on the open descriptor: the file
    read is the regular file that was checked (same device and inode).
    """
    path = os.fspath(path)
    try:
        before = os.stat(path)
    except OSError as exc:
        raise InputError('%s %s: cannot open (%s)' % (what, path, exc.strerror or exc)) from None
    if not stat.S_ISREG(before.st_mode):
        raise InputError('%s %s: not a regular file (%s); refusing to read it'
                         % (what, path, _kind(before.st_mode)))
    if limit is not None and before.st_size > limit:
        raise InputError('%s %s: %d bytes, larger than the limit of %d bytes'
                         % (what, path, before.st_size, limit))
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_NOCTTY', 0) | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputError('%s %s: cannot open (%s)' % (what, path, exc.strerror or exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError('%s %s: not a regular file (%s); refusing to read it'
                             % (what, path, _kind(st.st_mode)))
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise InputError('%s %s: replaced while being opened; refusing to read it' % (what, path))
        if limit is not None and st.st_size > limit:
            raise InputError('%s %s: %d bytes, larger than the limit of %d bytes'
                             % (what, path, st.st_size, limit))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_regular_file(path, limit=DOCUMENT_LIMIT, what='file'):
    """Return the bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    See open_regular_file; a file that grows past ``limit`` while it is read is refused too.
    """
    fd, _st = open_regular_file(path, limit, what)
    try:
        chunks = []
        total = 0
        while True:
            try:
                chunk = os.read(fd, 1024 * 1024 if limit is None else min(1024 * 1024, limit + 1 - total))
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise InputError('%s %s: cannot read (%s)' % (what, path, exc.strerror or exc)) from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if limit is not None and total > limit:
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
        raise InputError('%s: not UTF-8 text (byte %d)' % (source, exc.start)) from None
    return text[1:] if text.startswith(u'\ufeff') else text


if HAS_YAML:
    class StrictSafeLoader(yaml.SafeLoader):
        """SafeLoader that refuses aliases/anchors and duplicate keys and bounds depth and size."""

        itsop_max_nodes = MAX_NODES

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
            self._itsop_nodes = getattr(self, '_itsop_nodes', 0) + 1
            if self._itsop_nodes > self.itsop_max_nodes:
                raise InputError('line %d: more than %d values in one document; refusing to read further'
                                 % (event.start_mark.line + 1, self.itsop_max_nodes))
            self._itsop_depth = getattr(self, '_itsop_depth', 0) + 1
            try:
                if self._itsop_depth > MAX_DEPTH:
                    raise InputError('line %d: nested deeper than %d levels'
                                     % (event.start_mark.line + 1, MAX_DEPTH))
                return super(StrictSafeLoader, self).compose_node(parent, index)
            finally:
                self._itsop_depth -= 1

        def construct_object(self, node, deep=False):
            try:
                return super(StrictSafeLoader, self).construct_object(node, deep=deep)
            except InputError:
                raise
            except (ValueError, TypeError, OverflowError) as exc:
                # e.g. an integer of more than 4300 digits, a timestamp such as 2026-13-45
                raise InputError('line %d: a value cannot be read (%s)' % (node.start_mark.line + 1, exc)) from None

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
                                         % (key_node.start_mark.line + 1)) from None
                    line = key_node.start_mark.line + 1
                    if key in seen:
                        raise InputError('duplicate key %r at lines %d and %d'
                                         % (key, seen[key], line))
                    seen[key] = line
            return super(StrictSafeLoader, self).construct_mapping(node, deep=deep)


def load_yaml(text, source='document', max_nodes=MAX_NODES):
    """Parse YAML/JSON text strictly (see module docstring); InputError names source and line.

    ``max_nodes`` bounds the number of values (and so the parse time) of the document.
    """
    if not HAS_YAML:
        return load_json(text, source)
    loader = None
    try:
        loader = StrictSafeLoader(text)  # the reader checks the characters here already
        loader.itsop_max_nodes = max_nodes
        return loader.get_single_data()
    except InputError as exc:
        raise InputError('%s: %s' % (source, exc)) from None
    except yaml.YAMLError as exc:
        raise InputError('%s: not valid YAML (%s)' % (source, ' '.join(str(exc).split()))) from None
    except RecursionError:
        raise InputError('%s: nested too deeply' % source) from None
    except (ValueError, TypeError, OverflowError) as exc:
        # a value the safe constructor cannot build: an integer of more than 4300 digits, a
        # timestamp such as 2026-13-45, ...
        raise InputError('%s: a value cannot be read (%s)' % (source, exc)) from None
    finally:
        if loader is not None:
            loader.dispose()


def _line_of(text, pos):
    return text.count('\n', 0, pos) + 1


class _StrictJSONDecoder(json.JSONDecoder):
    """JSON decoder that refuses duplicate keys naming both lines, and bounds the nesting depth."""

    def __init__(self, source):
        super(_StrictJSONDecoder, self).__init__()
        self._source = source
        self._depth = 0
        self.parse_object = self._parse_object
        self.parse_array = self._parse_array
        self.scan_once = json.scanner.py_make_scanner(self)

    def _enter(self, s, end):
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise InputError('%s: line %d: nested deeper than %d levels'
                             % (self._source, _line_of(s, end), MAX_DEPTH))

    def _parse_array(self, s_and_end, scan_once):
        self._enter(*s_and_end)
        try:
            return json.decoder.JSONArray(s_and_end, scan_once)
        finally:
            self._depth -= 1

    def _parse_object(self, s_and_end, strict, scan_once, object_hook, object_pairs_hook, memo=None):
        s, end = s_and_end
        self._enter(s, end)
        try:
            return self._object(s, end, strict, scan_once)
        finally:
            self._depth -= 1

    def _object(self, s, end, strict, scan_once):
        ws = _JSON_WS.match
        out = {}
        lines = {}
        end = ws(s, end).end()
        if s[end:end + 1] == '}':
            return out, end + 1
        while True:
            if s[end:end + 1] != '"':
                raise json.JSONDecodeError('Expecting property name enclosed in double quotes', s, end)
            key_pos = end
            key, end = json.decoder.scanstring(s, end + 1, strict)
            end = ws(s, end).end()
            if s[end:end + 1] != ':':
                raise json.JSONDecodeError("Expecting ':' delimiter", s, end)
            end = ws(s, end + 1).end()
            try:
                value, end = scan_once(s, end)
            except StopIteration as err:
                raise json.JSONDecodeError('Expecting value', s, err.value) from None
            line = _line_of(s, key_pos)
            if key in lines:
                raise InputError('%s: duplicate key %r at lines %d and %d' % (self._source, key, lines[key], line))
            lines[key] = line
            out[key] = value
            end = ws(s, end).end()
            char = s[end:end + 1]
            if char == '}':
                return out, end + 1
            if char != ',':
                raise json.JSONDecodeError("Expecting ',' delimiter", s, end)
            end = ws(s, end + 1).end()


_JSON_WS = re.compile(r'[ \t\n\r]*')


def load_json(text, source='document'):
    """Parse JSON with duplicate keys refused naming both lines; InputError names source and position."""
    try:
        return _StrictJSONDecoder(source).decode(text)
    except InputError:
        raise
    except ValueError as exc:
        raise InputError('%s: not valid JSON (%s)' % (source, exc)) from None
    except RecursionError:
        raise InputError('%s: nested too deeply' % source) from None


def load_document_file(path, what='document', limit=DOCUMENT_LIMIT, max_nodes=MAX_NODES):
    """read_regular_file + decode_text + load_yaml in one call."""
    raw = read_regular_file(path, limit=limit, what=what)
    return load_yaml(decode_text(raw, '%s %s' % (what, path)), '%s %s' % (what, path), max_nodes=max_nodes)
