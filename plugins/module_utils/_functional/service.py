# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A service check: the systemd unit's state (running: ActiveState ``active``; stopped: loaded and
``inactive`` or ``failed``; a unit systemd does not know is ``missing`` and passes neither) and, when asked,
whether it is enabled (UnitFileState ``enabled`` or ``enabled-runtime``)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


def unit_name(name):
    return name if '.' in name else name + '.service'


def unit_properties(host, systemctl, unit):
    rc, out, err = host.run_command([systemctl, 'show', unit, '--no-pager',
                                     '--property=LoadState,ActiveState,SubState,UnitFileState'])
    props = {}
    for line in out.splitlines():
        key, _sep, value = line.partition('=')
        props[key.strip()] = value.strip()
    return rc, props, err


def service_state(props):
    """``running``, ``stopped``, ``missing`` or systemd's ActiveState when it is on the way (``activating``...)."""
    if props.get('LoadState') in (None, '', 'not-found'):
        return 'missing'
    active = props.get('ActiveState')
    if active == 'active':
        return 'running'
    if active in ('inactive', 'failed'):
        return 'stopped'
    return active or 'unknown'


def service_check(host, check):
    unit = unit_name(check['name'])
    want_state = check['state']
    want_enabled = check.get('enabled')
    expected = dict(state=want_state, enabled=want_enabled)
    systemctl = host.get_bin_path('systemctl')
    if not systemctl:
        return dict(passed=False, expected=expected, actual=dict(state='unknown', status='unknown'),
                    message='%s: systemctl not found on this host (service checks need systemd)' % unit)
    rc, props, err = unit_properties(host, systemctl, unit)
    state = service_state(props) if rc == 0 else 'unknown'
    status = props.get('UnitFileState') or 'missing'
    if state == 'missing':
        status = 'missing'
    enabled = status in ('enabled', 'enabled-runtime')
    enabled_ok = want_enabled is None or enabled == want_enabled
    shown = 'not installed' if state == 'missing' else state
    message = '%s is %s (%s), expected %s' % (unit, shown, status, want_state)
    if want_enabled is not None:
        message += ' and %s' % ('enabled' if want_enabled else 'not enabled')
    if rc != 0:
        message += ' (systemctl show: rc %d %s)' % (rc, ' '.join((err or '').split())[:200])
    return dict(
        passed=state == want_state and enabled_ok,
        expected=expected,
        actual=dict(state=state, status=status,
                    active_state='%s/%s' % (props.get('ActiveState'), props.get('SubState'))),
        message=message,
    )
