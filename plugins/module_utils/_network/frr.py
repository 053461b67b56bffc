# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""FRRouting: the facts of ``checks.py`` from vtysh's JSON output (FRR 8)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json


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


COMMANDS = {
    'neighbors': ('show bgp summary json', neighbors),
    'routes': ('show ip route json', routes),
    'config': ('show running-config', lambda text: text),
}
