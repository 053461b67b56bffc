# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The watch of health_watch: its options checked, then one sample per interval until the end or a certain breach."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import time

from ansible_collections.itsop.change.plugins.module_utils._health.breach import certain_breach, first_seen
from ansible_collections.itsop.change.plugins.module_utils._health.samplers import (
    http_sample, journal_errors, resources, service_sample)
from ansible_collections.itsop.change.plugins.module_utils.health import evaluate, sample_events, summarize


def utc(ts=None):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(ts))


def option_errors(p):
    """What is wrong with the module's options; empty when nothing."""
    errors = []
    if p['duration_seconds'] < 0:
        errors.append('duration_seconds must be 0 or more (got %d)' % p['duration_seconds'])
    if p['interval_seconds'] < 1:
        errors.append('interval_seconds must be at least 1 (got %d)' % p['interval_seconds'])
    if p['http_timeout'] < 1:
        errors.append('http_timeout must be at least 1 (got %d)' % p['http_timeout'])
    if not p['http_url'] and not p['service']:
        errors.append('nothing to watch: give http_url, service or both')
    return errors


def watch(module, p):
    """Sample for ``duration_seconds`` (module.params ``p``); the module result without ``changed``."""
    thresholds = p['thresholds'] or {}

    systemctl = journalctl = None
    restarts0 = 0
    if p['service']:
        systemctl = module.get_bin_path('systemctl', required=True)
        journalctl = module.get_bin_path('journalctl')
        first = service_sample(module, systemctl, p['service'])
        if first['service_load_state'] in ('not-found', None):
            module.fail_json(msg='service %s is not known to systemd on this host (LoadState=%s)'
                             % (p['service'], first['service_load_state']))
        restarts0 = first['restarts'] or 0

    started = time.time()
    planned = p['duration_seconds'] // p['interval_seconds'] + 1
    deadline = time.monotonic() + p['duration_seconds']
    samples = []
    stopped_early = False
    while True:
        tick = time.monotonic()
        sample = dict(t=utc(), http_ok=None, http_status=None, http_error=None, latency_ms=None,
                      service_active=None, service_state=None, restarts=None, journal_errors=None)
        if p['http_url']:
            sample.update(http_sample(p))
        if systemctl:
            svc = service_sample(module, systemctl, p['service'])
            svc.pop('service_load_state', None)
            sample.update(svc)
            if journalctl:
                sample['journal_errors'] = journal_errors(module, journalctl, p['service'], started,
                                                          p['journal_priority'])
        sample.update(resources(p['disk_paths']))
        samples.append(sample)
        if p['stop_on_breach'] and certain_breach(samples, planned, restarts0, thresholds):
            stopped_early = time.monotonic() < deadline
            break
        next_tick = tick + p['interval_seconds']
        if next_tick > deadline:
            break
        time.sleep(max(0.0, next_tick - time.monotonic()))

    summary = summarize(samples, restarts_at_start=restarts0)
    breaches = evaluate(summary, thresholds)
    for breach in breaches:
        breach['first_seen'] = first_seen(samples, breach['metric'], restarts0, thresholds)
    return dict(
        healthy=not breaches,
        summary=summary,
        breaches=breaches,
        events=sample_events(samples),
        samples=samples[-p['max_samples_returned']:] if p['max_samples_returned'] > 0 else [],
        started_at=utc(started),
        ended_at=utc(),
        stopped_early=stopped_early,
        thresholds=dict((k, v) for k, v in thresholds.items() if v is not None),
    )
