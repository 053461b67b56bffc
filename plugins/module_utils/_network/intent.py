# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The intended configuration of one network device: the change request's ``lines`` as they are, or
its ``template`` rendered for the device.

A template is change-request text, written by a requester, so it is rendered in Jinja's sandbox and
nothing else: no Ansible lookup, filter plugin or controller file is within its reach, an undefined
variable is an error (never an empty string), and no expression may build a string or list larger than
``MAX_OUTPUT`` characters. Its variables are ``items.network_config.vars`` of the request with the
device's own inventory variable ``network_template_vars`` over them, and ``inventory_hostname``.

The same rules for the text apply to lines and to every rendered configuration (``text_errors``): no
carriage return or tab (a device reads what follows as a command of its own), no line that sets a
secret (the request and its plan are archived and shown in reports)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

from ansible_collections.itsop.change.plugins.module_utils._network import configtext

try:
    from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment
    HAS_JINJA2 = True
except ImportError:  # pragma: no cover - jinja2 comes with ansible-core on the controller
    HAS_JINJA2 = False
    SandboxedEnvironment = object

#: the longest rendered configuration, and the largest value an expression may build
MAX_OUTPUT = 1000000
VAR_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*$')
WHERE = 'items.network_config'


class IntentError(Exception):
    pass


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox with ``*`` and ``**`` bounded (``'x' * 10**9`` would fill the controller's
    memory; the sandbox already bounds ``range``)."""
    intercepted_binops = frozenset(['*', '**'])

    def call_binop(self, context, operator, left, right):
        if operator == '**' and isinstance(right, int) and isinstance(left, int) and abs(right) > 64:
            raise IntentError('an exponent larger than 64 (%r ** %r)' % (left, right))
        if operator == '*':
            for value, times in ((left, right), (right, left)):
                if isinstance(value, (str, list, tuple)) and isinstance(times, int) \
                        and len(value) * times > MAX_OUTPUT:
                    raise IntentError('a value of more than %d characters or items (repeated %d times)'
                                      % (MAX_OUTPUT, times))
        return super(_Sandbox, self).call_binop(context, operator, left, right)


_ENVIRONMENT = []


def _environment():
    """The one sandbox (made on first use; it holds no state between renderings)."""
    if not HAS_JINJA2:
        raise IntentError('%s.template needs the Python package jinja2 on the controller' % WHERE)
    if not _ENVIRONMENT:
        _ENVIRONMENT.append(_Sandbox(undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
                                     lstrip_blocks=True, autoescape=False))
    return _ENVIRONMENT[0]


def text_errors(text, where):
    """What is wrong with configuration text (lines or a rendered template), each naming ``where``."""
    errors = []
    for number, line in enumerate(text.split('\n'), 1):
        if '\r' in line or '\t' in line:
            errors.append('%s: line %d holds a %s; a device would read what follows as a command of its own'
                          % (where, number, 'carriage return' if '\r' in line else 'tab'))
            break
    secret = next((found for found in map(configtext.secret_in, text.splitlines()) if found), None)
    if secret:
        errors.append('%s: %r sets a %s; a change request is archived and shown in reports, so it must not '
                      'carry secrets - set it on the device outside the change (secrets in network changes are '
                      'not supported yet)' % (where, secret.string.split()[0] + ' ...',
                                              secret.group(1).split()[0].lower()))
    return errors


def item_errors(item):
    """What is wrong with ``items.network_config`` beyond its schema: its text, the template's syntax,
    the names of its variables."""
    errors = []
    for key in ('lines', 'template'):
        if isinstance(item.get(key), str):
            errors.extend(text_errors(item[key], '%s.%s' % (WHERE, key)))
    if isinstance(item.get('template'), str):
        try:
            _environment().parse(item['template'])
        except TemplateSyntaxError as exc:
            errors.append('%s.template: line %s: %s' % (WHERE, exc.lineno, exc.message))
        except IntentError as exc:
            errors.append(str(exc))
    for name in sorted(item.get('vars') or {}):
        if not VAR_NAME.match(name):
            errors.append('%s.vars: %r is not a template variable name (letters, digits and "_", not first a '
                          'digit)' % (WHERE, name))
    return errors


def render(item, host, host_vars=None):
    """The intended configuration of device ``host``: ``lines``, or ``template`` rendered with
    ``vars`` and then the device's ``host_vars`` (its ``network_template_vars``). Raises IntentError
    naming the device and what is wrong."""
    item = item or {}
    if 'template' not in item:
        return item.get('lines') or ''
    where = '%s.template for %s' % (WHERE, host)
    if host_vars is not None and not isinstance(host_vars, dict):
        raise IntentError('%s: network_template_vars of %s is a %s, not a mapping'
                          % (where, host, type(host_vars).__name__))
    context = dict(item.get('vars') or {})
    context.update(host_vars or {})
    bad = sorted(name for name in context if not VAR_NAME.match(str(name)))
    if bad:
        raise IntentError('%s: %s: not template variable names' % (where, ', '.join(map(repr, bad))))
    context['inventory_hostname'] = host
    try:
        text = _environment().from_string(item['template']).render(context)
    except TemplateError as exc:
        hint = (' (set it in %s.vars or in the device\'s inventory variable network_template_vars)' % WHERE
                if type(exc).__name__ == 'UndefinedError' else '')
        raise IntentError('%s: %s%s' % (where, exc.message or exc, hint)) from None
    except IntentError as exc:
        raise IntentError('%s: %s' % (where, exc)) from None
    if len(text) > MAX_OUTPUT:
        raise IntentError('%s: rendered %d characters, more than %d' % (where, len(text), MAX_OUTPUT))
    errors = text_errors(text, 'the configuration rendered by ' + where)
    if errors:
        raise IntentError('; '.join(errors))
    if not text.strip():
        raise IntentError('%s: renders no configuration line for this device' % where)
    return text
