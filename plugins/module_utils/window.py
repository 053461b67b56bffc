# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Change window arithmetic for stage 3 (SOP 3.1: execute in the approved schedule).

A change may start work at or after ``start`` and up to ``end + grace``; before ``start`` it is
``before``, inside ``[start, end]`` it is ``inside``, within the grace period ``grace`` and after
that ``after``. ``open`` is true for ``inside`` and ``grace``.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import datetime
import math
import time

from ansible_collections.itsop.change.plugins.module_utils._change_request.timestamps import (
    epoch,
    get_timezone,
    offset_disagreement,
    parse_timestamp,
    utc_iso,
)

STATE_BEFORE = 'before'
STATE_INSIDE = 'inside'
STATE_GRACE = 'grace'
STATE_AFTER = 'after'


def _timestamp(field, value, timezone):
    try:
        return parse_timestamp(value, timezone)
    except (TypeError, ValueError) as exc:
        raise ValueError('%s: %r is not an ISO-8601 timestamp (%s)' % (field, value, exc)) from None


def _seconds_until(later, earlier):
    """Whole seconds from ``earlier`` to ``later``, rounded up (a moment still ahead is never 0), 0 if past."""
    return max(0, math.ceil(epoch(later) - epoch(earlier)))


def window_status(start, end, now=None, grace_minutes=0, timezone=None):
    """Return a dict describing where ``now`` falls relative to the window.

    start, end, now: ISO-8601 strings (naive ones read in ``timezone``) or aware datetimes;
    now defaults to the current time. Raises ValueError for unusable input, naming the field.
    When ``timezone`` is given, a ``start`` or ``end`` with an explicit offset must carry the
    offset that zone has at that instant (an offset that disagrees is refused, naming both: it
    would silently move the window and change its length).
    """
    if timezone is not None:
        try:
            get_timezone(timezone)
        except ValueError as exc:
            raise ValueError('timezone: %s' % exc) from None
    start_dt = _timestamp('start', start, timezone)
    end_dt = _timestamp('end', end, timezone)
    if timezone is not None:
        for field, value in (('start', start), ('end', end)):
            disagreement = offset_disagreement(value, timezone, 'timezone')
            if disagreement:
                raise ValueError('%s: %s' % (field, disagreement))
    if end_dt <= start_dt:
        raise ValueError('end: window end %s is not after start %s' % (utc_iso(end_dt), utc_iso(start_dt)))
    if isinstance(grace_minutes, bool) or not isinstance(grace_minutes, int) or grace_minutes < 0:
        raise ValueError('grace_minutes: must be a whole number of minutes, 0 or more; got %r' % (grace_minutes,))
    if now is None:
        now_dt = datetime.datetime.fromtimestamp(time.time(), datetime.timezone.utc)
    else:
        now_dt = _timestamp('now', now, timezone)
    close_dt = end_dt + datetime.timedelta(minutes=grace_minutes)
    if now_dt < start_dt:
        state = STATE_BEFORE
    elif now_dt <= end_dt:
        state = STATE_INSIDE
    elif now_dt <= close_dt:
        state = STATE_GRACE
    else:
        state = STATE_AFTER
    return {
        'state': state,
        'open': state in (STATE_INSIDE, STATE_GRACE),
        'now_utc': utc_iso(now_dt),
        'start_utc': utc_iso(start_dt),
        'end_utc': utc_iso(end_dt),
        'close_utc': utc_iso(close_dt),
        'grace_minutes': grace_minutes,
        'seconds_until_start': _seconds_until(start_dt, now_dt),
        'seconds_until_close': _seconds_until(close_dt, now_dt),
    }


def describe(status):
    """One sentence for logs and failure messages."""
    if status['state'] == STATE_BEFORE:
        return 'the change window opens at %s (now %s, %d s to go)' % (
            status['start_utc'], status['now_utc'], status['seconds_until_start'])
    if status['state'] == STATE_AFTER:
        return 'the change window closed at %s (end %s + %d min grace; now %s)' % (
            status['close_utc'], status['end_utc'], status['grace_minutes'], status['now_utc'])
    if status['state'] == STATE_GRACE:
        return 'inside the grace period after the window end %s (closes %s; now %s)' % (
            status['end_utc'], status['close_utc'], status['now_utc'])
    return 'inside the change window %s - %s (now %s)' % (status['start_utc'], status['end_utc'], status['now_utc'])
