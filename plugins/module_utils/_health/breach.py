# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Breaches over the samples so far: a certain one (the watch may stop early) and when each first showed."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible_collections.itsop.change.plugins.module_utils.health import availability_lost


def certain_breach(samples, planned, restarts0, thresholds):
    last = samples[-1]
    if thresholds.get('max_restarts') is not None and last.get('restarts') is not None \
            and last['restarts'] - restarts0 > thresholds['max_restarts']:
        return True
    if thresholds.get('max_journal_errors') is not None and last.get('journal_errors') is not None \
            and last['journal_errors'] > thresholds['max_journal_errors']:
        return True
    return availability_lost(samples, planned, thresholds.get('availability_pct'))


def first_seen(samples, metric, restarts0, thresholds):
    """UTC time of the first sample at which a breach of ``metric`` showed."""
    for s in samples:
        if metric == 'availability_pct' and (s.get('http_ok') is False or s.get('service_active') is False):
            return s['t']
        if metric == 'max_restarts' and s.get('restarts') is not None \
                and s['restarts'] - restarts0 > thresholds[metric]:
            return s['t']
        if metric == 'max_journal_errors' and (s.get('journal_errors') or 0) > thresholds[metric]:
            return s['t']
        if metric == 'p95_latency_ms' and (s.get('latency_ms') or 0) > thresholds[metric]:
            return s['t']
        if metric == 'max_load1' and (s.get('load1') or 0) > thresholds[metric]:
            return s['t']
        if metric == 'min_mem_available_pct' and s.get('mem_available_pct') is not None \
                and s['mem_available_pct'] < thresholds[metric]:
            return s['t']
        disks = (s.get('disk_used_pct') or {}).values()
        if metric == 'max_disk_used_pct' and any(v > thresholds[metric] for v in disks):
            return s['t']
    return None
