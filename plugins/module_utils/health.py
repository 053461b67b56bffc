# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Summary statistics and threshold evaluation for the post-change health watch (SOP step 5.2).

Pure functions over a list of samples, standard library only. A sample is a dict::

    {"t": "2026-11-24T15:04:05Z", "http_ok": true, "http_status": 200, "latency_ms": 3.2,
     "http_error": null, "service_active": true, "service_state": "active/running",
     "restarts": 0, "journal_errors": 0, "load1": 0.1, "mem_available_pct": 81.0,
     "disk_used_pct": {"/": 40.1}}

Keys a watch does not measure are ``None``.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import math

THRESHOLD_KEYS = ('availability_pct', 'p95_latency_ms', 'max_restarts', 'max_journal_errors', 'max_load1',
                  'min_mem_available_pct', 'max_disk_used_pct')


def percentile(values, pct):
    """Nearest-rank percentile (``pct`` in 0..100) of ``values``; ``None`` for no values."""
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    if pct <= 0:
        return data[0]
    rank = math.ceil(pct / 100.0 * len(data))
    return data[min(max(rank, 1), len(data)) - 1]


def _round(value, digits=1):
    return None if value is None else round(float(value), digits)


def summarize(samples, restarts_at_start=0):
    """Summary statistics of a watch: availability, latency percentiles, restarts, errors, resources."""
    total = len(samples)
    checked = [s for s in samples if s.get('http_ok') is not None or s.get('service_active') is not None]
    up = [s for s in checked if s.get('http_ok') is not False and s.get('service_active') is not False]
    latencies = [s['latency_ms'] for s in samples if s.get('http_ok') and s.get('latency_ms') is not None]
    restarts = [s['restarts'] for s in samples if s.get('restarts') is not None]
    journal = [s['journal_errors'] for s in samples if s.get('journal_errors') is not None]
    loads = [s['load1'] for s in samples if s.get('load1') is not None]
    mems = [s['mem_available_pct'] for s in samples if s.get('mem_available_pct') is not None]
    disk_max = {}
    for s in samples:
        for mount, used in (s.get('disk_used_pct') or {}).items():
            disk_max[mount] = max(disk_max.get(mount, 0.0), used)
    http_errors = [s for s in samples if s.get('http_ok') is False]
    statuses = {}
    for s in samples:
        if s.get('http_status') is not None:
            key = str(s['http_status'])
            statuses[key] = statuses.get(key, 0) + 1
    return dict(
        samples=total,
        availability_pct=_round(100.0 * len(up) / len(checked), 2) if checked else None,
        http_failures=len(http_errors),
        http_status_counts=statuses,
        service_down_samples=len([s for s in samples if s.get('service_active') is False]),
        latency_ms=dict(
            min=_round(min(latencies)) if latencies else None,
            p50=_round(percentile(latencies, 50)),
            p95=_round(percentile(latencies, 95)),
            max=_round(max(latencies)) if latencies else None,
        ),
        restarts=(max(restarts) - restarts_at_start) if restarts else None,
        journal_errors=max(journal) if journal else None,
        load1_max=_round(max(loads), 2) if loads else None,
        mem_available_pct_min=_round(min(mems)) if mems else None,
        disk_used_pct_max=dict((k, _round(v)) for k, v in disk_max.items()),
    )


def evaluate(summary, thresholds):
    """Return the list of threshold breaches ``{metric, threshold, value, message}`` of a summary."""
    breaches = []
    t = dict((k, v) for k, v in (thresholds or {}).items() if v is not None)

    def add(metric, value, limit, message):
        breaches.append(dict(metric=metric, threshold=limit, value=value, message=message))

    if 'availability_pct' in t and summary['availability_pct'] is not None \
            and summary['availability_pct'] < t['availability_pct']:
        add('availability_pct', summary['availability_pct'], t['availability_pct'],
            'availability %.2f%% below %s%%' % (summary['availability_pct'], t['availability_pct']))
    p95 = summary['latency_ms']['p95']
    if 'p95_latency_ms' in t and p95 is not None and p95 > t['p95_latency_ms']:
        add('p95_latency_ms', p95, t['p95_latency_ms'], 'p95 latency %.1f ms above %s ms' % (p95, t['p95_latency_ms']))
    if 'max_restarts' in t and summary['restarts'] is not None and summary['restarts'] > t['max_restarts']:
        add('max_restarts', summary['restarts'], t['max_restarts'],
            'service restarted %d times (allowed %s)' % (summary['restarts'], t['max_restarts']))
    if 'max_journal_errors' in t and summary['journal_errors'] is not None \
            and summary['journal_errors'] > t['max_journal_errors']:
        add('max_journal_errors', summary['journal_errors'], t['max_journal_errors'],
            '%d journal errors (allowed %s)' % (summary['journal_errors'], t['max_journal_errors']))
    if 'max_load1' in t and summary['load1_max'] is not None and summary['load1_max'] > t['max_load1']:
        add('max_load1', summary['load1_max'], t['max_load1'],
            'load average %.2f above %s' % (summary['load1_max'], t['max_load1']))
    if 'min_mem_available_pct' in t and summary['mem_available_pct_min'] is not None \
            and summary['mem_available_pct_min'] < t['min_mem_available_pct']:
        add('min_mem_available_pct', summary['mem_available_pct_min'], t['min_mem_available_pct'],
            'available memory %.1f%% below %s%%' % (summary['mem_available_pct_min'], t['min_mem_available_pct']))
    if 'max_disk_used_pct' in t:
        for mount, used in sorted(summary['disk_used_pct_max'].items()):
            if used is not None and used > t['max_disk_used_pct']:
                add('max_disk_used_pct', used, t['max_disk_used_pct'],
                    'disk %s %.1f%% used, above %s%%' % (mount, used, t['max_disk_used_pct']))
    return breaches


def availability_lost(samples_so_far, planned_total, min_availability_pct):
    """True when the availability threshold can no longer be met even if every later sample is up."""
    if min_availability_pct is None or planned_total <= 0:
        return False
    down = len([s for s in samples_so_far
                if s.get('http_ok') is False or s.get('service_active') is False])
    best = 100.0 * (planned_total - down) / planned_total
    return best < min_availability_pct


def sample_events(samples):
    """Timestamps of bad samples: ``[{t, what}]`` (HTTP failure, service not active, new restart)."""
    events = []
    last_restarts = None
    for s in samples:
        if s.get('http_ok') is False:
            events.append(dict(t=s.get('t'), what='http', detail='status %s %s' % (
                s.get('http_status'), s.get('http_error') or '')))
        if s.get('service_active') is False:
            events.append(dict(t=s.get('t'), what='service', detail='service %s' % s.get('service_state')))
        if s.get('restarts') is not None:
            if last_restarts is not None and s['restarts'] > last_restarts:
                events.append(dict(t=s.get('t'), what='restart', detail='NRestarts %s -> %s' % (
                    last_restarts, s['restarts'])))
            last_restarts = s['restarts']
    return events
