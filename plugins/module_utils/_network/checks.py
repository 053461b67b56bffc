# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Network state checks (test-plan entries of a network change), evaluated on facts a platform reads.

Pure functions: a platform collector (``frr.py``) turns CLI output into facts -
``neighbors`` ``{address: {state, prefixes_received, names}}``, ``routes`` ``{prefix: [protocol, ...]}``,
``ospf_neighbors`` ``{router_id: {state, address, interface}}``, ``route_counts`` ``{protocol: routes}``
(and ``total``), ``config`` (the running configuration text), ``probes`` ``{probe_key(check): result}`` of
the ``ping`` and ``traceroute`` checks (run from the device) - and ``evaluate`` compares them with the checks.
One result per check: ``{type, name, passed, expected, actual, message}`` (the shape of
``functional_check`` results, so reports treat both alike).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

CHECK_TYPES = ('bgp_neighbor', 'ospf_neighbor', 'route', 'route_count', 'ping', 'traceroute',
               'config_contains', 'config_lacks')
# the option each type requires, and the options it takes besides type and name
_NEEDS = {'bgp_neighbor': 'neighbor', 'ospf_neighbor': 'neighbor', 'route': 'prefix', 'route_count': 'protocol',
          'ping': 'destination', 'traceroute': 'destination', 'config_contains': 'line', 'config_lacks': 'line'}
_OPTIONS = {'bgp_neighbor': ('state', 'min_prefixes'), 'ospf_neighbor': ('state',), 'route': ('protocol',),
            'route_count': ('min_routes', 'max_routes'), 'ping': ('source', 'count', 'max_loss_pct'),
            'traceroute': ('source', 'via', 'max_hops'), 'config_contains': ('regex',), 'config_lacks': ('regex',)}
# checks a device runs (sends packets) rather than reports: some platforms run them elsewhere (docs/network.md)
PROBE_TYPES = ('ping', 'traceroute')
_INTEGERS = {'min_prefixes': (0, None), 'min_routes': (0, None), 'max_routes': (0, None), 'count': (1, 100),
             'max_loss_pct': (0, 100), 'max_hops': (1, 64)}


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
        unknown = set(check) - set(('type', 'name', need) + _OPTIONS[kind])
        if unknown:
            errors.append('%s (%s): unknown option(s) %s' % (where, kind, ', '.join(sorted(unknown))))
        for option, (low, high) in sorted(_INTEGERS.items()):
            value = check.get(option)
            if option in _OPTIONS[kind] and value is not None and (
                    isinstance(value, bool) or not isinstance(value, int)
                    or value < low or (high is not None and value > high)):
                errors.append('%s (%s): %s must be an integer from %s%s' % (
                    where, kind, option, low, ' to %s' % high if high is not None else ''))
        if kind in PROBE_TYPES:
            for option in ('destination', 'source'):
                if check.get(option) is not None and not _ADDRESS.match(str(check[option])):
                    errors.append('%s (%s): %s must be an IPv4 address' % (where, kind, option))
            via = check.get('via')
            if via is not None and (not isinstance(via, list) or not all(
                    isinstance(hop, str) and _ADDRESS.match(hop) for hop in via)):
                errors.append('%s (%s): via must be a list of IPv4 addresses' % (where, kind))
    return errors


_ADDRESS = re.compile(r'^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}$')


def probe_key(check):
    """The key of a probe check's result in the facts (one probe per destination, source and kind)."""
    return '%s %s from %s' % (check['type'], check['destination'], check.get('source') or 'default')


def _config_has(config, line, regex):
    lines = config.splitlines()
    if regex:
        pattern = re.compile(line)
        return any(pattern.search(item) for item in lines)
    want = line.strip()
    return any(item.strip() == want for item in lines)


def _tally(what, found, bad, state):
    """'2 of 3 neighbors Established; not: 10.0.0.3 Active' for (name, entry) pairs found and bad."""
    message = '%d of %d %s %s' % (len(found) - len(bad), len(found), what, state)
    if bad:
        message += '; not: ' + ', '.join('%s %s' % (name, entry.get('state')) for name, entry in bad)
    return message


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
            message = _tally('neighbors', found, bad, state)
        name = 'bgp_neighbor %s' % wanted
    elif kind == 'ospf_neighbor':
        wanted = check['neighbor']
        state = check.get('state') or 'Full'
        neighbors = facts.get('ospf_neighbors') or {}
        found = sorted((r, n) for r, n in neighbors.items()
                       if wanted in ('*', r, n.get('address')))
        # "Full/DR" is Full: the role after the slash is the neighbor's part in the segment
        bad = [(r, n) for r, n in found if (n.get('state') or '').split('/')[0] != state]
        passed = bool(found) and not bad
        expected = {'state': state}
        actual = {'neighbors': dict((r, n.get('state')) for r, n in found)}
        if not found:
            message = 'OSPF neighbor %s is not up (no adjacency; expected %s)' % (wanted, state)
        else:
            message = _tally('OSPF neighbors', found, bad, state)
        name = 'ospf_neighbor %s' % wanted
    elif kind == 'route_count':
        protocol = check['protocol']
        counts = facts.get('route_counts') or {}
        count = counts.get(protocol, 0)
        low, high = check.get('min_routes'), check.get('max_routes')
        passed = (low is None or count >= low) and (high is None or count <= high)
        expected = {'min_routes': low, 'max_routes': high}
        actual = {'routes': count}
        message = '%d %s routes' % (count, protocol)
        if not passed:
            message += ' (expected %s)' % ' and '.join(
                text for text in ('at least %s' % low if low is not None else '',
                                  'at most %s' % high if high is not None else '') if text)
        name = 'route_count %s' % protocol
    elif kind in PROBE_TYPES:
        result = (facts.get('probes') or {}).get(probe_key(check)) or {}
        expected = {'destination': check['destination'], 'source': check.get('source')}
        if kind == 'ping':
            limit = check.get('max_loss_pct') or 0
            loss = result.get('loss_pct', 100.0)
            passed = bool(result) and result.get('received', 0) > 0 and loss <= limit
            expected['max_loss_pct'] = limit
            actual = dict((k, result.get(k)) for k in ('sent', 'received', 'loss_pct', 'rtt_avg_ms'))
            message = 'ping %s: %s of %s replies, %s%% loss' % (
                check['destination'], result.get('received', 0), result.get('sent', 0), loss)
            if result.get('rtt_avg_ms') is not None:
                message += ', %.3f ms average' % result['rtt_avg_ms']
        else:
            hops = result.get('hops') or []
            via = check.get('via') or []
            missing = [hop for hop in via if hop not in hops]
            passed = bool(result.get('reached')) and not missing
            expected['via'] = via
            actual = {'hops': hops, 'reached': bool(result.get('reached'))}
            message = 'traceroute %s: %s in %d hop(s) (%s)' % (
                check['destination'], 'reached' if result.get('reached') else 'not reached', len(hops),
                ' '.join(hop or '*' for hop in hops))
            if missing:
                message += '; not through %s' % ', '.join(missing)
        if result.get('error'):
            message += ' (%s)' % result['error']
        name = '%s %s' % (kind, check['destination'])
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
        'ospf_neighbors': 'ospf_neighbor' in kinds,
        'routes': 'route' in kinds,
        'route_counts': 'route_count' in kinds,
        'config': bool(kinds & set(['config_contains', 'config_lacks'])),
        'probes': bool(kinds & set(PROBE_TYPES)),
    }


def intended(running, candidate):
    """The configuration a change intends: the running configuration without the lines the
    candidate negates (``no <line>``), followed by the candidate's other lines. Line by line, without
    the device's own parser: what a standard rule sees of a change before it is applied."""
    negated = set(line.strip()[3:].strip() for line in candidate.splitlines() if line.strip().startswith('no '))
    kept = [line for line in running.splitlines() if line.strip() not in negated]
    added = [line for line in candidate.splitlines() if not line.strip().startswith('no ')]
    return '\n'.join(kept + added) + '\n'
