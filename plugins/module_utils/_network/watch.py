# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Intensive monitoring of a network device (SOP Tahap 5.2): the state checks sampled over a period.

``watch`` returns the shape ``health_watch`` returns for a server (``healthy``, ``started_at``,
``ended_at``, ``stopped_early``, ``thresholds``, ``summary``, ``breaches``, ``events``, ``samples``),
so role monitor records, notifies and rolls back alike. A sample passes when every check passes. A
breach is availability (passing samples in per cent) below ``availability_pct``, or a BGP neighbor
leaving the Established state (a flap) - whether or not a check names it.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import time

from ansible_collections.itsop.change.plugins.module_utils._network import checks as net_checks


def _iso(epoch):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(epoch))


def watch(read, checks, duration, interval, availability_pct=100.0, stop_on_breach=True,
          clock=time.time, sleep=time.sleep, errors=(ValueError, OSError)):
    """Sample ``read()`` (facts, see checks.py; raises one of ``errors`` on a device it cannot read)."""
    started = clock()
    samples, events, breaches = [], [], []
    last_state, flaps = {}, {}
    first_failed = None
    while True:
        at = clock()
        try:
            facts = read()
            results = [net_checks.evaluate(check, facts) for check in checks]
            failed = [r['name'] + ': ' + r['message'] for r in results if not r['passed']]
        except errors as exc:  # the device could not be read: a failed sample, not a crash
            facts, failed = {}, ['device not readable: %s' % exc]
        for address, neighbor in sorted((facts.get('neighbors') or {}).items()):
            state, before = neighbor.get('state'), last_state.get(address)
            if before == 'Established' and state != 'Established':
                flaps[address] = flaps.get(address, 0) + 1
                events.append({'at': _iso(at),
                               'message': 'BGP neighbor %s left Established (now %s)' % (address, state)})
            last_state[address] = state
        samples.append({'at': _iso(at), 'passed': not failed, 'failed': failed})
        if failed:
            first_failed = first_failed or _iso(at)
            events.append({'at': _iso(at), 'message': 'sample failed: ' + '; '.join(failed)})
        availability = 100.0 * sum(1 for s in samples if s['passed']) / len(samples)
        breached = availability < float(availability_pct) or bool(flaps)
        if (breached and stop_on_breach) or at - started + interval > duration:
            break
        sleep(interval)
    ended = clock()
    if availability < float(availability_pct):
        breaches.append({'metric': 'availability_pct', 'value': round(availability, 2),
                         'threshold': float(availability_pct), 'first_seen': first_failed,
                         'message': 'availability %.1f%% below %.1f%% (%d of %d samples failed)'
                                    % (availability, float(availability_pct),
                                       sum(1 for s in samples if not s['passed']), len(samples))})
    if flaps:
        breaches.append({'metric': 'neighbor_flaps', 'value': sum(flaps.values()), 'threshold': 0,
                         'first_seen': next((e['at'] for e in events if 'left Established' in e['message']), None),
                         'message': 'BGP neighbor flap: %s'
                                    % ', '.join('%s (%d)' % item for item in sorted(flaps.items()))})
    return {
        'healthy': not breaches,
        'started_at': _iso(started),
        'ended_at': _iso(ended),
        'stopped_early': bool(breaches) and stop_on_breach and ended - started + interval <= duration,
        'thresholds': {'availability_pct': float(availability_pct), 'neighbor_flaps': 0},
        'summary': {'samples': len(samples), 'samples_failed': sum(1 for s in samples if not s['passed']),
                    'availability_pct': round(availability, 2), 'neighbor_flaps': flaps},
        'breaches': breaches,
        'events': events,
        'samples': samples,
    }
