#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: health_watch
short_description: Watch a service after a change for a period and return health statistics and breaches
version_added: 0.1.0
description:
  - Samples the health of a host for O(duration_seconds), one sample every O(interval_seconds)
    (SOP step 5.2, ISO 27001 A.8.16), and returns summary statistics and threshold breaches.
  - "Each sample records: the HTTP status and latency of O(http_url) (requested from the host
    itself), the systemd state and C(NRestarts) of O(service), the number of journal entries of
    the service at priority O(journal_priority) or worse since the watch started, the 1-minute
    load average, the available memory and the used share of each of O(disk_paths)."
  - "The summary gives availability (share of samples where the HTTP check and the service were
    both up), p50/p95/max latency, HTTP status counts, restarts during the watch, journal errors,
    peak load, lowest available memory and highest disk use."
  - With O(stop_on_breach=true) the watch ends as soon as a breach is certain (the service
    restarted more often than allowed, too many journal errors, or availability can no longer
    reach the threshold), so an incident is raised at once.
  - The module does not fail because of a breach; it returns RV(healthy=false) and the breaches,
    so the caller can record an incident and decide on rollback. It fails on bad options or when
    the service unit is unknown.
  - Nothing is changed on the host; the module returns C(changed=false).
author:
  - itsop.change engineers (@itsop)
extends_documentation_fragment:
  - itsop.change.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: The module only reads; it watches the same way in check mode.
  platform:
    details: Linux with C(/proc); service and journal checks need systemd.
options:
  duration_seconds:
    description: How long to watch.
    type: int
    default: 60
  interval_seconds:
    description: Time between the starts of two samples.
    type: int
    default: 5
  http_url:
    description: URL requested in every sample (from the host itself). No HTTP check when omitted.
    type: str
  http_status:
    description: HTTP status codes that count as up.
    type: list
    elements: int
    default: [200]
  http_timeout:
    description: Timeout of one HTTP request in seconds; a timeout is a failed sample.
    type: int
    default: 5
  validate_certs:
    description: Verify TLS certificates of O(http_url).
    type: bool
    default: true
  service:
    description: systemd service watched (state, C(NRestarts), journal). No service checks when omitted.
    type: str
  journal_priority:
    description: Journal priority counted as an error (this priority and worse).
    type: str
    choices: [emerg, alert, crit, err, warning]
    default: err
  disk_paths:
    description: Mount points or directories whose disk use is sampled.
    type: list
    elements: path
    default: [/]
  thresholds:
    description: Limits; a limit left out is not checked.
    type: dict
    default: {}
    suboptions:
      availability_pct:
        description: Lowest allowed availability in percent.
        type: float
      p95_latency_ms:
        description: Highest allowed 95th percentile latency of successful HTTP requests, in milliseconds.
        type: float
      max_restarts:
        description: Most service restarts allowed during the watch.
        type: int
      max_journal_errors:
        description: Most journal entries at O(journal_priority) or worse allowed during the watch.
        type: int
      max_load1:
        description: Highest allowed 1-minute load average.
        type: float
      min_mem_available_pct:
        description: Lowest allowed share of available memory in percent.
        type: float
      max_disk_used_pct:
        description: Highest allowed used share of any of O(disk_paths) in percent.
        type: float
  stop_on_breach:
    description: End the watch early once a breach is certain.
    type: bool
    default: true
  max_samples_returned:
    description: Return at most this many samples (the last ones); statistics use all samples.
    type: int
    default: 1000
'''

EXAMPLES = r'''
- name: Watch the application for one minute after go-live
  itsop.change.health_watch:
    duration_seconds: 60
    interval_seconds: 5
    http_url: http://127.0.0.1:8080/health
    service: itsop-demo-web
    thresholds:
      availability_pct: 99
      p95_latency_ms: 1000
      max_restarts: 0
      max_journal_errors: 5
  register: watch

- name: Show the result
  ansible.builtin.debug:
    msg: "{{ watch.summary.availability_pct }}% available, breaches: {{ watch.breaches | map(attribute='message') }}"
'''

RETURN = r'''
healthy:
  description: Whether no threshold was breached.
  returned: always
  type: bool
  sample: true
summary:
  description: Summary statistics of the watch.
  returned: always
  type: dict
  contains:
    samples:
      description: Number of samples taken.
      type: int
    availability_pct:
      description: Share of samples with the HTTP check and the service up, in percent.
      type: float
      sample: 100.0
    http_failures:
      description: Samples whose HTTP check failed.
      type: int
    http_status_counts:
      description: Number of samples per HTTP status code.
      type: dict
      sample: {"200": 12}
    service_down_samples:
      description: Samples in which the service was not active.
      type: int
    latency_ms:
      description: C(min), C(p50), C(p95), C(max) latency of successful requests in milliseconds.
      type: dict
    restarts:
      description: Service restarts during the watch (from C(NRestarts)).
      type: int
    journal_errors:
      description: Journal entries of the service at O(journal_priority) or worse since the start.
      type: int
    load1_max:
      description: Highest 1-minute load average seen.
      type: float
    mem_available_pct_min:
      description: Lowest available memory seen, in percent.
      type: float
    disk_used_pct_max:
      description: Highest used share per disk path, in percent.
      type: dict
breaches:
  description: Threshold breaches, each C({metric, threshold, value, message, first_seen}).
  returned: always
  type: list
  elements: dict
  sample: [{"metric": "availability_pct", "threshold": 99, "value": 0.0, "message": "availability 0.00% below 99%",
            "first_seen": "2026-11-24T15:04:10Z"}]
events:
  description:
    - Bad samples with their UTC time, each C({t, what, detail}).
    - C(what) is one of C(http), C(service), C(restart).
  returned: always
  type: list
  elements: dict
samples:
  description: The samples (at most O(max_samples_returned), the latest).
  returned: always
  type: list
  elements: dict
started_at:
  description: UTC start of the watch (ISO 8601).
  returned: always
  type: str
ended_at:
  description: UTC end of the watch (ISO 8601).
  returned: always
  type: str
stopped_early:
  description: Whether the watch ended before O(duration_seconds) because of a certain breach.
  returned: always
  type: bool
thresholds:
  description: The thresholds that were applied (those given).
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._health.watch import option_errors, watch  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            duration_seconds=dict(type='int', default=60),
            interval_seconds=dict(type='int', default=5),
            http_url=dict(type='str'),
            http_status=dict(type='list', elements='int', default=[200]),
            http_timeout=dict(type='int', default=5),
            validate_certs=dict(type='bool', default=True),
            service=dict(type='str'),
            journal_priority=dict(type='str', default='err', choices=['emerg', 'alert', 'crit', 'err', 'warning']),
            disk_paths=dict(type='list', elements='path', default=['/']),
            thresholds=dict(type='dict', default={}, options=dict(
                availability_pct=dict(type='float'),
                p95_latency_ms=dict(type='float'),
                max_restarts=dict(type='int'),
                max_journal_errors=dict(type='int'),
                max_load1=dict(type='float'),
                min_mem_available_pct=dict(type='float'),
                max_disk_used_pct=dict(type='float'),
            )),
            stop_on_breach=dict(type='bool', default=True),
            max_samples_returned=dict(type='int', default=1000),
        ),
        supports_check_mode=True,
    )
    p = module.params
    errors = option_errors(p)
    if errors:
        module.fail_json(msg='invalid options: ' + '; '.join(errors))
    module.exit_json(changed=False, **watch(module, p))


if __name__ == '__main__':
    main()
