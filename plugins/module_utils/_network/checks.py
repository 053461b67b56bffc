# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Network state checks (test-plan entries of a network change), evaluated on facts a platform reads.

Pure functions: a platform collector (``frr.py``) turns CLI output into facts -
``neighbors`` ``{address: {state, prefixes_received, names}}``, ``routes`` ``{prefix: [protocol, ...]}``,
``config`` (the running configuration text) - and ``evaluate`` compares them with the checks.
One result per check: ``{type, name, passed, expected, actual, message}`` (the shape of
``functional_check`` results, so reports treat both alike).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

CHECK_TYPES = ('bgp_neighbor', 'route', 'config_contains', 'config_lacks')
_NEEDS = {'bgp_neighbor': 'neighbor', 'route': 'prefix', 'config_contains': 'line', 'config_lacks': 'line'}


def option_errors(checks):
    """Error strings naming the check (by index) whose options are wrong; empty when all are valid."""
    errors = []
    if not isinstance(checks, list) or not checks:
        return ['checks must be a non-empty list']
    for index, check in enumerate(checks):
        where = 'checks[%d]' % index
        if not isinstance(check, dict):
            errors.append('%s is not a mapping' % where)
            continue
        kind = check.get('type')
        if kind not in CHECK_TYPES:
            errors.append('%s: type %r is not one of %s' % (where, kind, ', '.join(CHECK_TYPES)))
            continue
        need = _NEEDS[kind]
        if not isinstance(check.get(need), str) or not check.get(need):
            errors.append('%s (%s): %s is required (a string)' % (where, kind, need))
            continue
        if kind in ('config_contains', 'config_lacks') and check.get('regex'):
            try:
                re.compile(check[need])
            except re.error as exc:
                errors.append('%s (%s): line is not a regular expression: %s' % (where, kind, exc))
        unknown = set(check) - set(['type', 'name', need, 'state', 'protocol', 'regex', 'min_prefixes'])
        if unknown:
            errors.append('%s (%s): unknown option(s) %s' % (where, kind, ', '.join(sorted(unknown))))
    return errors


def _config_has(config, line, regex):
    lines = config.splitlines()
    if regex:
        pattern = re.compile(line)
        return any(pattern.search(item) for item in lines)
    want = line.strip()
    return any(item.strip() == want for item in lines)


def evaluate(check, facts):
    kind = check['type']
    if kind == 'bgp_neighbor':
        wanted = check['neighbor']
        state = check.get('state') or 'Established'
        minimum = check.get('min_prefixes')
        neighbors = facts.get('neighbors') or {}
        if wanted == '*':
            found = sorted(neighbors.items())
        else:
            found = [(a, n) for a, n in sorted(neighbors.items()) if a == wanted or wanted in (n.get('names') or [])]
        expected = {'state': state, 'min_prefixes': minimum}

        def good(entry):
            return entry.get('state') == state and (
                minimum is None or (entry.get('prefixes_received') or 0) >= int(minimum))

        bad = [(a, n) for a, n in found if not good(n)]
        passed = bool(found) and not bad
        actual = {'neighbors': dict((a, {'state': n.get('state'), 'prefixes_received': n.get('prefixes_received')})
                                    for a, n in found)}
        if not found:
            message = 'neighbor %s is not configured (expected %s)' % (wanted, state)
        elif wanted != '*' and len(found) == 1:
            entry = found[0][1]
            message = 'neighbor %s is %s' % (wanted, entry.get('state'))
            if minimum is not None:
                message += ', %s prefixes received (at least %s)' % (entry.get('prefixes_received'), minimum)
            if bad:
                message += ' (expected %s)' % state
        else:
            message = '%d of %d neighbors %s' % (len(found) - len(bad), len(found), state)
            if bad:
                message += '; not: ' + ', '.join('%s %s' % (a, n.get('state')) for a, n in bad)
        name = 'bgp_neighbor %s' % wanted
    elif kind == 'route':
        prefix = check['prefix']
        protocol = check.get('protocol')
        protocols = (facts.get('routes') or {}).get(prefix) or []
        passed = bool(protocols) and (protocol is None or protocol in protocols)
        expected = {'prefix': prefix, 'protocol': protocol}
        actual = {'protocols': protocols}
        message = 'route %s %s' % (prefix, ('via ' + ', '.join(protocols)) if protocols else 'absent')
        if not passed:
            message += ' (expected %s)' % ('present' if protocol is None else 'from ' + protocol)
        name = 'route %s' % prefix
    else:
        line = check['line']
        present = _config_has(facts.get('config') or '', line, bool(check.get('regex')))
        want_present = kind == 'config_contains'
        passed = present == want_present
        expected = {'line': line, 'present': want_present}
        actual = {'present': present}
        message = 'configuration %s %r' % ('contains' if present else 'lacks', line)
        name = '%s %s' % (kind, line)
    return {'type': kind, 'name': check.get('name') or name, 'passed': bool(passed),
            'expected': expected, 'actual': actual, 'message': message}


def needs(checks):
    """Which facts the checks need (so a collector asks the device only for those)."""
    kinds = set(check['type'] for check in checks)
    return {
        'neighbors': 'bgp_neighbor' in kinds,
        'routes': 'route' in kinds,
        'config': bool(kinds & set(['config_contains', 'config_lacks'])),
    }


def intended(running, candidate):
    """The configuration a change intends: the running configuration without the lines the
    candidate negates (``no <line>``), followed by the candidate's other lines. Line by line, without
    the device's own parser: what a standard rule sees of a change before it is applied."""
    negated = set(line.strip()[3:].strip() for line in candidate.splitlines() if line.strip().startswith('no '))
    kept = [line for line in running.splitlines() if line.strip() not in negated]
    added = [line for line in candidate.splitlines() if not line.strip().startswith('no ')]
    return '\n'.join(kept + added) + '\n'
