# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""FRRouting: the facts of ``checks.py`` from vtysh's JSON output (FRR 8), and the probes (ping,
traceroute), which FRR leaves to the router's Linux shell: vtysh's own ``ping`` never stops."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import re


def _json(text, command):
    try:
        return json.loads(text or '{}')
    except ValueError:
        raise ValueError('%s did not print JSON: %s' % (command, (text or '')[:200])) from None


def neighbors(show_bgp_summary_json):
    """``show bgp summary json`` -> ``{address: {state, prefixes_received, names}}`` (all address
    families; ``names``: the peer's hostname and the neighbor's description, for checks by name)."""
    data = _json(show_bgp_summary_json, 'show bgp summary json')
    result = {}
    for family in data.values():
        if not isinstance(family, dict):
            continue
        for address, peer in (family.get('peers') or {}).items():
            names = sorted(set(n for n in (peer.get('hostname'), peer.get('desc')) if n))
            entry = result.setdefault(address, {'state': peer.get('state'), 'prefixes_received': 0, 'names': names})
            entry['prefixes_received'] += int(peer.get('pfxRcd') or 0)
    return result


def routes(show_ip_route_json):
    """``show ip route json`` -> ``{prefix: [protocol of each selected, installed route]}``."""
    data = _json(show_ip_route_json, 'show ip route json')
    result = {}
    for prefix, entries in data.items():
        for entry in entries or []:
            if entry.get('selected') and entry.get('installed', True):
                result.setdefault(prefix, []).append(entry.get('protocol'))
    return result


def ospf_neighbors(show_ip_ospf_neighbor_json):
    """``show ip ospf neighbor json`` -> ``{router_id: {state, address, interface}}``."""
    data = _json(show_ip_ospf_neighbor_json, 'show ip ospf neighbor json')
    result = {}
    for router_id, entries in (data.get('neighbors') or {}).items():
        for entry in entries or []:
            result[router_id] = {'state': entry.get('state') or entry.get('nbrState'),
                                 'address': entry.get('address') or entry.get('ifaceAddress'),
                                 'interface': entry.get('ifaceName')}
    return result


def route_counts(show_ip_route_summary_json):
    """``show ip route summary json`` -> ``{protocol: routes in the FIB}`` plus ``bgp`` (eBGP + iBGP)
    and ``total``."""
    data = _json(show_ip_route_summary_json, 'show ip route summary json')
    result = {}
    for entry in data.get('routes') or []:
        result[entry.get('type')] = result.get(entry.get('type'), 0) + int(entry.get('fib') or 0)
    result['bgp'] = result.get('ebgp', 0) + result.get('ibgp', 0)
    result['total'] = int(data.get('routesTotalFib') or 0)
    return result


COMMANDS = {
    'neighbors': ('show bgp summary json', neighbors),
    'ospf_neighbors': ('show ip ospf neighbor json', ospf_neighbors),
    'routes': ('show ip route json', routes),
    'route_counts': ('show ip route summary json', route_counts),
    'config': ('show running-config', lambda text: text),
}

_PING_COUNTS = re.compile(r'(\d+) packets transmitted, (\d+) (?:packets )?received')
_PING_RTT = re.compile(r'= [\d.]+/([\d.]+)/')
_HOP = re.compile(r'^\s*(\d+)\s+(.*)$')


def probe_argv(check):
    """The shell command (argv) of a ping or traceroute check, run on the router (addresses are
    checked by ``checks.option_errors`` first)."""
    source = check.get('source')
    if check['type'] == 'ping':
        argv = ['ping', '-n', '-c', str(check.get('count') or 3), '-W', '1', '-i', '0.2']
        return argv + (['-I', source] if source else []) + [check['destination']]
    argv = ['traceroute', '-n', '-q', '1', '-w', '1', '-m', str(check.get('max_hops') or 8)]
    return argv + (['-s', source] if source else []) + [check['destination']]


def ping(output, rc):
    """iputils ``ping`` output -> ``{sent, received, loss_pct, rtt_avg_ms}`` (``error`` when it
    printed no statistics)."""
    counts = _PING_COUNTS.search(output or '')
    if not counts:
        return {'sent': 0, 'received': 0, 'loss_pct': 100.0, 'rtt_avg_ms': None,
                'error': 'ping exited %s: %s' % (rc, (output or '').strip()[-200:])}
    sent, received = int(counts.group(1)), int(counts.group(2))
    rtt = _PING_RTT.search(output)
    return {'sent': sent, 'received': received,
            'loss_pct': round(100.0 * (sent - received) / sent, 1) if sent else 100.0,
            'rtt_avg_ms': float(rtt.group(1)) if rtt else None}


def traceroute(output, rc, destination):
    """``traceroute -n -q 1`` output -> ``{hops: [address or None], reached}``."""
    hops = []
    for line in (output or '').splitlines()[1:]:
        match = _HOP.match(line)
        if match:
            first = match.group(2).split()[0] if match.group(2).split() else '*'
            hops.append(None if first == '*' else first)
    result = {'hops': hops, 'reached': bool(hops) and hops[-1] == destination}
    if rc != 0:
        result['error'] = 'traceroute exited %s: %s' % (rc, (output or '').strip()[-200:])
    return result


def probe(check, output, rc):
    """The probe result of one check from its command's output and exit status."""
    if check['type'] == 'ping':
        return ping(output, rc)
    return traceroute(output, rc, check['destination'])
