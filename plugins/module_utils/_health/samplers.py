# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One reading of each source health_watch samples: HTTP, the systemd unit, its journal, host resources."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import time

from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url


def http_sample(params):
    start = time.monotonic()
    status = None
    error = None
    try:
        resp = open_url(params['http_url'], method='GET', timeout=params['http_timeout'],
                        validate_certs=params['validate_certs'], follow_redirects='none')
        status = resp.getcode()
        resp.read()
    except HTTPError as exc:
        status = exc.code
    except (URLError, OSError, ValueError) as exc:
        error = to_native(getattr(exc, 'reason', exc))
    latency = (time.monotonic() - start) * 1000.0
    ok = status in params['http_status']
    return dict(http_ok=ok, http_status=status, http_error=error, latency_ms=round(latency, 2))


def service_sample(module, systemctl, service):
    out = module.run_command([systemctl, 'show', service,
                              '--property=ActiveState,SubState,NRestarts,LoadState'])[1]
    props = {}
    for line in out.splitlines():
        key, _sep, value = line.partition('=')
        props[key] = value
    restarts = props.get('NRestarts')
    return dict(
        service_active=props.get('ActiveState') == 'active',
        service_state='%s/%s' % (props.get('ActiveState'), props.get('SubState')),
        service_load_state=props.get('LoadState'),
        restarts=int(restarts) if restarts and restarts.isdigit() else None,
    )


def journal_errors(module, journalctl, service, since, priority):
    rc, out = module.run_command([journalctl, '--unit', service, '--priority', priority,
                                  '--since', '@%d' % int(since), '--output', 'cat', '--no-pager', '--quiet'])[:2]
    if rc != 0:
        return None
    return len([line for line in out.splitlines() if line.strip()])


def resources(disk_paths):
    out = dict(load1=None, mem_available_pct=None, disk_used_pct={})
    try:
        out['load1'] = os.getloadavg()[0]
    except OSError:
        pass
    try:
        mem = {}
        with open('/proc/meminfo') as fh:
            for line in fh:
                key, _sep, value = line.partition(':')
                mem[key] = int(value.split()[0])
        if mem.get('MemTotal'):
            avail = mem.get('MemAvailable', mem.get('MemFree', 0))
            out['mem_available_pct'] = round(100.0 * avail / mem['MemTotal'], 1)
    except (OSError, ValueError, IndexError):
        pass
    for path in disk_paths:
        try:
            st = os.statvfs(path)
        except OSError:
            continue
        total = st.f_blocks * st.f_frsize
        if total:
            used = (st.f_blocks - st.f_bfree) * st.f_frsize
            # like df: used / (used + available to unprivileged users)
            avail = st.f_bavail * st.f_frsize
            out['disk_used_pct'][path] = round(100.0 * used / (used + avail), 1) if used + avail else 0.0
    return out
