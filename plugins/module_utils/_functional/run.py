# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every check in turn: each is tried until it passes, at most ``retries + 1`` times, ``delay`` seconds apart.

``host`` is what the checks need from the managed host: ``run_command(argv, handle_exceptions=...)`` and
``get_bin_path(name)`` (an AnsibleModule has both)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import time

from ansible_collections.itsop.change.plugins.module_utils._functional.command import command_check
from ansible_collections.itsop.change.plugins.module_utils._functional.file import file_check
from ansible_collections.itsop.change.plugins.module_utils._functional.http import http_check
from ansible_collections.itsop.change.plugins.module_utils._functional.package import package_check
from ansible_collections.itsop.change.plugins.module_utils._functional.port import port_check
from ansible_collections.itsop.change.plugins.module_utils._functional.service import service_check


def check_name(check):
    """The name a result carries (as stage-4 evidence and the report show it)."""
    kind = check['type']
    if kind == 'http':
        return 'http %s' % check['url']
    if kind == 'port':
        return 'port %s:%d' % (check['host'], check['port'])
    if kind == 'command':
        return 'command %s' % (check.get('name') or ' '.join(check['command']))
    if kind == 'file':
        return 'file %s' % check['path']
    return '%s %s' % (kind, check['name'])


def check_once(host, check, p):
    kind = check['type']
    if kind == 'http':
        return http_check(check, check.get('timeout') or p['http_timeout'], p['validate_certs'])
    if kind == 'port':
        return port_check(check, check.get('timeout') or p['port_timeout'])
    if kind == 'service':
        return service_check(host, check)
    if kind == 'package':
        return package_check(host, check, p['package_manager'])
    if kind == 'file':
        return file_check(check)
    return command_check(host, check)


def run_check(host, check, p, sleep=time.sleep):
    attempts = 0
    while True:
        attempts += 1
        outcome = check_once(host, check, p)
        if outcome['passed'] or attempts > p['retries']:
            break
        sleep(p['delay'])
    return dict(type=check['type'], name=check_name(check), passed=bool(outcome['passed']),
                expected=outcome['expected'], actual=outcome['actual'], message=outcome['message'],
                attempts=attempts)


def run_checks(host, p, sleep=time.sleep):
    """The module result without ``changed``: one result per check of ``p['checks']`` and ``passed``."""
    results = [run_check(host, check, p, sleep) for check in p['checks']]
    return dict(results=results, passed=all(r['passed'] for r in results))
