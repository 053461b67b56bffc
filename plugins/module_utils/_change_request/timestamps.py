# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Timestamps and time zones of a change window.

A naive timestamp is read in the window's IANA time zone (default ``Asia/Jakarta``); an explicit
offset is taken as written, and :func:`offset_disagreement` says when it disagrees with the
zone at that instant. Results are aware datetimes in UTC.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import datetime
import re

try:
    import zoneinfo  # Python 3.9+
    HAS_ZONEINFO = True
except ImportError:  # pragma: no cover - Python 3.8 targets
    zoneinfo = None
    HAS_ZONEINFO = False


DEFAULT_TIMEZONE = 'Asia/Jakarta'


_TS_OFFSET_RE = re.compile(r'([+-])(\d{2}):?(\d{2})\Z')


def _parse_as_written(text, tz_name=None):
    """(aware datetime with the offset as written, True when the text had an explicit offset)."""
    if isinstance(text, datetime.datetime):
        value = text
    else:
        raw = str(text).strip().replace(' ', 'T', 1)
        if raw.endswith('Z') or raw.endswith('z'):
            raw = raw[:-1] + '+00:00'
        raw = _TS_OFFSET_RE.sub(lambda m: '%s%s:%s' % (m.group(1), m.group(2), m.group(3)), raw)
        # Python < 3.11 fromisoformat accepts only 0, 3 or 6 fraction digits
        frac = re.search(r'\.(\d+)', raw)
        if frac:
            digits = (frac.group(1) + '000000')[:6]
            raw = raw[:frac.start()] + '.' + digits + raw[frac.end():]
        value = datetime.datetime.fromisoformat(raw)
    if value.tzinfo is not None:
        return value, True
    return value.replace(tzinfo=get_timezone(tz_name or DEFAULT_TIMEZONE)), False


def parse_timestamp(text, tz_name=None):
    """Parse an ISO-8601 timestamp; a naive one is read in tz_name. Returns an aware datetime (UTC).

    An explicit offset is taken as written; offset_disagreement() tells whether it agrees with
    the time zone (the change request refuses one that does not).
    """
    return _parse_as_written(text, tz_name)[0].astimezone(datetime.timezone.utc)


def explicit_offset(text):
    """The UTC offset written in an ISO-8601 timestamp (a timedelta), or None when it is naive."""
    value, explicit = _parse_as_written(text, 'UTC')
    return value.utcoffset() if explicit else None


def format_offset(delta):
    """timedelta -> '+07:00' / '-03:30'."""
    seconds = int(delta.total_seconds())
    sign = '-' if seconds < 0 else '+'
    seconds = abs(seconds)
    out = '%s%02d:%02d' % (sign, seconds // 3600, (seconds % 3600) // 60)
    return out + (':%02d' % (seconds % 60) if seconds % 60 else '')


def offset_disagreement(text, tz_name, zone_field='time zone'):
    """None when ``text`` is naive or its explicit offset is the one ``tz_name`` has at that instant.

    Otherwise a sentence naming the offset given and the zone's offset at that instant: an offset
    that disagrees with the window's time zone is almost always a mistake (a local time written
    with ``Z``, or a time copied from another zone) and silently changes the window's length.
    Raises ValueError when ``text`` or ``tz_name`` cannot be read.
    """
    given = explicit_offset(text)
    if given is None:
        return None
    zone = get_timezone(tz_name)
    instant = parse_timestamp(text)
    expected = instant.astimezone(zone).utcoffset()
    if expected == given:
        return None
    return ('offset %s given in %s disagrees with %s %s (%s at that instant, where this time is %s)'
            % (format_offset(given), text if isinstance(text, str) else text.isoformat(), zone_field, tz_name,
               format_offset(expected), instant.astimezone(zone).isoformat()))


def get_timezone(name):
    """Return a tzinfo for an IANA name; raises ValueError when unknown."""
    if name in ('UTC', 'Etc/UTC', 'Z'):
        return datetime.timezone.utc
    if not HAS_ZONEINFO:
        raise ValueError('time zone %s cannot be resolved without zoneinfo (Python 3.9+)' % name)
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError('unknown time zone %s' % name) from None


def utc_iso(value):
    return value.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def epoch(value):
    """Seconds since the epoch of an aware datetime (a float)."""
    return (value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds()
