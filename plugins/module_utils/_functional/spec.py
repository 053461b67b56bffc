# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The options of functional_check: one check in the change request's ``test_plan.functional`` format
(``schemas/change_request.v1.json``, ``$defs.check``) and what is wrong with a list of them."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

TYPES = ('http', 'service', 'port', 'package', 'command', 'file')

# the field each check type cannot do without
REQUIRED = (('type', 'http', ('url',)), ('type', 'service', ('name',)), ('type', 'port', ('port',)),
            ('type', 'package', ('name',)), ('type', 'command', ('command',)), ('type', 'file', ('path',)))

CHECK_OPTIONS = dict(
    type=dict(type='str', required=True, choices=list(TYPES)),
    name=dict(type='str'),
    url=dict(type='str'),
    status=dict(type='int', default=200),
    body_contains=dict(type='str'),
    max_latency_ms=dict(type='float'),
    timeout=dict(type='float'),
    state=dict(type='str', default='running', choices=['running', 'stopped']),
    enabled=dict(type='bool'),
    port=dict(type='int'),
    host=dict(type='str', default='127.0.0.1'),
    version=dict(type='str'),
    command=dict(type='list', elements='str'),
    rc=dict(type='int', default=0),
    stdout_contains=dict(type='str'),
    path=dict(type='str'),
)

ARGUMENT_SPEC = dict(
    checks=dict(type='list', elements='dict', required=True, options=CHECK_OPTIONS,
                required_if=[(key, value, list(fields)) for key, value, fields in REQUIRED]),
    retries=dict(type='int', default=0),
    delay=dict(type='float', default=1.0),
    http_timeout=dict(type='float', default=10.0),
    port_timeout=dict(type='float', default=5.0),
    validate_certs=dict(type='bool', default=True),
    package_manager=dict(type='str', default='auto', choices=['auto', 'dpkg', 'rpm']),
)


def check_errors(index, check):
    """What is wrong with the ``index``-th check (already typed by the argument spec); empty when nothing."""
    where = 'checks[%d] (%s)' % (index, check['type'])
    errors = []
    kind = check['type']
    if check.get('timeout') is not None and check['timeout'] <= 0:
        errors.append('%s: timeout must be more than 0 seconds (got %s)' % (where, check['timeout']))
    if kind == 'http':
        if not check['url'].lower().startswith(('http://', 'https://')):
            errors.append('%s: url must start with http:// or https:// (got %r)' % (where, check['url']))
        if not 100 <= check['status'] <= 599:
            errors.append('%s: status must be an HTTP status code 100-599 (got %d)' % (where, check['status']))
        if check.get('max_latency_ms') is not None and check['max_latency_ms'] < 0:
            errors.append('%s: max_latency_ms must be 0 or more (got %s)' % (where, check['max_latency_ms']))
    elif kind == 'port':
        if not 1 <= check['port'] <= 65535:
            errors.append('%s: port must be 1-65535 (got %d)' % (where, check['port']))
        if not check['host']:
            errors.append('%s: host must not be empty' % where)
    elif kind in ('service', 'package'):
        if not check['name'].strip() or check['name'].startswith('-'):
            errors.append('%s: name must be a %s name, not empty and not starting with "-" (got %r)'
                          % (where, kind, check['name']))
    elif kind == 'command':
        if not check['command'] or not check['command'][0]:
            errors.append('%s: command must be a non-empty argument list, program first' % where)
    elif kind == 'file':
        if not check['path'].startswith('/'):
            errors.append('%s: path must be absolute (got %r)' % (where, check['path']))
    return errors


def option_errors(p):
    """What is wrong with the module's options (``module.params``); empty when nothing."""
    errors = []
    if p['retries'] < 0:
        errors.append('retries must be 0 or more (got %d)' % p['retries'])
    if p['delay'] < 0:
        errors.append('delay must be 0 or more seconds (got %s)' % p['delay'])
    for key in ('http_timeout', 'port_timeout'):
        if p[key] <= 0:
            errors.append('%s must be more than 0 seconds (got %s)' % (key, p[key]))
    for index, check in enumerate(p['checks']):
        errors.extend(check_errors(index, check))
    return errors
