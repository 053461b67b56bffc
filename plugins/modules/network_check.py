#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: network_check
short_description: State checks of a network device (BGP and OSPF neighbors, routes, ping, configuration lines)
version_added: 1.1.0
description:
  - Runs the network test-plan entries of a change (SOP Tahap 4.1, and the confirm step of Tahap 3)
    against a device reached with C(ansible_connection=ansible.netcommon.network_cli) and reports one
    result per check, like M(itsop.change.functional_check) does for servers. It never fails because
    a check failed - the caller decides (RV(passed)); it fails on malformed O(checks) and when the
    device cannot be asked.
  - The device is asked only for what the checks need, with the platform's own show commands.
    Implemented for C(ansible_network_os=itsop.change.frr) (FRRouting 8, JSON output of vtysh). On
    another platform the module fails with a message saying so - the checks are platform-neutral,
    a platform needs a collector in C(plugins/module_utils/_network/) (see C(docs/network.md)).
  - "Two ways to reach the device: through C(ansible.netcommon.network_cli) (the router's CLI), or run on
    the router itself (an FRR router's Linux shell, C(ansible_connection=ansible.builtin.ssh), where the
    module asks C(vtysh -c) and runs the probes). FRR's CLI has no usable ping (vtysh's C(ping) never
    stops), so C(ping) and C(traceroute) checks of an FRR router need the second way; role
    C(itsop.change.network) chooses it for them (its C(frr/check.yml) platform step)."
author:
  - itsop.change engineers (@itsop)
options:
  checks:
    description:
      - The checks. Each is a dict with C(type) and the options of that type; C(name) (optional)
        replaces the generated name in the results.
      - "C(bgp_neighbor): C(neighbor) (address, hostname or description, or C(*) for every neighbor),
        C(state) (default C(Established)), C(min_prefixes)."
      - "C(ospf_neighbor): C(neighbor) (router id or interface address, or C(*)) has an adjacency in
        C(state) (default C(Full); C(Full/DR) counts as C(Full))."
      - "C(route_count): the routes of C(protocol) in the forwarding table (C(bgp), C(ospf), C(connected),
        C(static), C(kernel), or C(total)) are at least C(min_routes) and at most C(max_routes)."
      - "C(ping): C(destination) (IPv4 address) answers C(count) (default 3) echo requests sent from the
        device (from address C(source) when given) with at most C(max_loss_pct) (default 0) per cent lost."
      - "C(traceroute): C(destination) is reached from the device (from C(source)) within C(max_hops)
        (default 8), through every address of C(via) when given."
      - "C(route): C(prefix) (for example C(192.0.2.2/32)) is in the routing table (selected and
        installed), from C(protocol) when given (C(bgp), C(static), C(connected), C(kernel), ...)."
      - "C(config_contains), C(config_lacks): C(line) is (not) a line of the running configuration,
        compared without leading and trailing blanks; with C(regex=true) C(line) is a regular
        expression searched in every line."
    type: list
    elements: dict
    default: []
  standard:
    description:
      - The company's configuration standard (the C(rules) of the file C(docs/config-standard.md) describes).
        Only the rules for network devices are evaluated here (checks C(config_required) and
        C(config_forbidden)); the others are about servers and are ignored.
      - The result is RV(standard); a finding at or above O(fail_on_severity) makes RV(passed) false.
    type: list
    elements: dict
    default: []
  candidate:
    description:
      - Configuration lines a change will add. With O(standard), the rules are evaluated on the running
        configuration followed by these lines (the intended configuration, SOP Tahap 2), not on the running
        configuration alone (Tahap 4.2). A C(no <line>) of the candidate removes that line first. This is
        line-based, without the device's parser - the evaluation after the change (stage 4) is the one
        that reads what the device made of it.
    type: str
    default: ''
  fail_on_severity:
    description: Lowest severity of a standard finding that fails.
    type: str
    default: high
    choices: [info, low, medium, high, critical]
  duration_seconds:
    description:
      - Monitoring (SOP Tahap 5.2) - sample O(checks) every O(interval_seconds) for this many seconds instead
        of once. The result then has the keys of M(itsop.change.health_watch) (RV(healthy), RV(breaches),
        RV(samples), ...). A breach is availability below O(availability_pct) or a BGP neighbor leaving
        Established (a flap), whether or not a check names it.
    type: int
    default: 0
  interval_seconds:
    description: Seconds between two samples when monitoring.
    type: int
    default: 5
  availability_pct:
    description: Per cent of samples that must pass when monitoring.
    type: float
    default: 100.0
  stop_on_breach:
    description: Stop sampling at the first breach.
    type: bool
    default: true
extends_documentation_fragment:
  - itsop.change.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Only reads; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: network
    details: C(ansible.netcommon.network_cli), or the shell of an FRR router; implemented for C(itsop.change.frr).
seealso:
  - module: itsop.change.functional_check
  - plugin: itsop.change.frr
    plugin_type: cliconf
'''

EXAMPLES = r'''
- name: The peering and the route the change must not break
  itsop.change.network_check:
    checks:
      - {type: bgp_neighbor, neighbor: 10.89.0.4, min_prefixes: 1}
      - {type: route, prefix: 192.0.2.2/32, protocol: bgp}
      - {type: config_lacks, line: "ip route 10.89.0.1/32 blackhole"}
  register: net
- name: Loopback to loopback, run on the FRR router's shell (probes need it)
  itsop.change.network_check:
    checks:
      - {type: ping, destination: 192.0.2.2, source: 192.0.2.1}
      - {type: traceroute, destination: 192.0.2.2, source: 192.0.2.1, max_hops: 4}
      - {type: ospf_neighbor, neighbor: "*"}
  vars:
    ansible_connection: ansible.builtin.ssh
    ansible_user: root
- name: Stop when a check failed
  ansible.builtin.assert:
    that: net.passed
    fail_msg: "{{ net.results | rejectattr('passed') | map(attribute='message') | join('; ') }}"
'''

RETURN = r'''
passed:
  description: Whether every check passed and the standard found nothing blocking.
  returned: always
  type: bool
network_os:
  description: The platform the device reported (from its cliconf plugin).
  returned: always
  type: str
  sample: frr
standard:
  description: The standard's verdict - C(passed), C(findings) (C(id, severity, title, subject, blocking)), C(blocking),
    C(counts) per severity, C(evaluated) (V(running) or V(running+candidate)), C(rules_evaluated) (the ids of
    the network rules evaluated).
  returned: when O(standard) has network rules
  type: dict
healthy:
  description: Monitoring - no breach during the period.
  returned: when O(duration_seconds) is given
  type: bool
breaches:
  description: Monitoring - C(metric, value, threshold, first_seen, message) of each breach.
  returned: when O(duration_seconds) is given
  type: list
  elements: dict
samples:
  description: Monitoring - C(at, passed, failed) of each sample.
  returned: when O(duration_seconds) is given
  type: list
  elements: dict
results:
  description: One entry per check, in order - C(type), C(name), C(passed), C(expected), C(actual), C(message).
  returned: when O(duration_seconds) is 0
  type: list
  elements: dict
'''

import json  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.connection import Connection, ConnectionError  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._network import checks as net_checks  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._network import frr  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._network import watch as net_watch  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils import security_compare  # noqa: E402

COLLECTORS = {'frr': frr}


def _cli_reader(module, connection, wants):
    """Reads over network_cli; returns (read, network_os)."""
    if wants['probes']:
        module.fail_json(msg='network_check: ping and traceroute checks are not run through the CLI of '
                             'this platform; run the module on the device shell (see the module documentation)')
    return lambda command: connection.get(command=command)


def _shell_reader(module):
    """Reads on an FRR router itself (vtysh -c), None when this is not one."""
    vtysh = module.get_bin_path('vtysh')
    if not vtysh:
        return None

    def read(command):
        rc, out, err = module.run_command([vtysh, '-c', command])
        if rc != 0:
            raise OSError('vtysh -c %r exited %s: %s' % (command, rc, (err or out).strip()[:200]))
        return out
    return read


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checks=dict(type='list', elements='dict', default=[]),
            standard=dict(type='list', elements='dict', default=[]),
            candidate=dict(type='str', default=''),
            fail_on_severity=dict(type='str', default='high', choices=list(security_compare.SEVERITIES)),
            duration_seconds=dict(type='int', default=0),
            interval_seconds=dict(type='int', default=5),
            availability_pct=dict(type='float', default=100.0),
            stop_on_breach=dict(type='bool', default=True),
        ),
        required_one_of=[('checks', 'standard')],
        supports_check_mode=True,
    )
    checks = module.params['checks']
    rules = security_compare.network_rules(module.params['standard'])
    errors = net_checks.option_errors(checks) if checks else []
    errors += ['standard: ' + e for e in security_compare.validate_rules(rules)]
    if not checks and not rules:
        errors.append('give checks, or a standard with network rules (config_required, config_forbidden)')
    if errors:
        module.fail_json(msg='invalid checks: ' + '; '.join(errors))
    wants = net_checks.needs(checks)
    wants['config'] = wants['config'] or bool(rules)
    watching = module.params['duration_seconds'] > 0
    wants['neighbors'] = wants['neighbors'] or watching  # flaps are watched whether a check names them
    probes = [check for check in checks if check['type'] in net_checks.PROBE_TYPES]
    try:
        if module._socket_path:
            connection = Connection(module._socket_path)
            capabilities = json.loads(connection.get_capabilities())
            network_os = capabilities.get('device_info', {}).get('network_os') or capabilities.get('network_api')
            collector = COLLECTORS.get(network_os)
            if collector is None:
                module.fail_json(msg='network_check: state checks are not implemented for network_os %s '
                                     '(implemented: %s); see docs/network.md'
                                     % (network_os, ', '.join(sorted(COLLECTORS))), network_os=network_os)
            ask = _cli_reader(module, connection, wants)
        else:
            network_os, collector, ask = 'frr', frr, _shell_reader(module)
            if ask is None:
                module.fail_json(msg='network_check needs ansible_connection=ansible.netcommon.network_cli '
                                     '(and ansible_network_os set to the device platform), or to run on an '
                                     'FRR router (vtysh not found on this host)')

        def read():
            facts = {}
            for fact, wanted in wants.items():
                if wanted and fact != 'probes':
                    command, parse = collector.COMMANDS[fact]
                    facts[fact] = parse(ask(command))
            if probes:
                facts['probes'] = {}
                for check in probes:
                    rc, out, err = module.run_command(collector.probe_argv(check))
                    facts['probes'][net_checks.probe_key(check)] = collector.probe(check, out + err, rc)
            return facts

        if watching:
            if rules or not checks:
                module.fail_json(msg='duration_seconds (monitoring) samples the checks; give checks and no standard')
            if not 1 <= module.params['interval_seconds'] <= module.params['duration_seconds']:
                module.fail_json(msg='interval_seconds must be between 1 and duration_seconds')
            result = net_watch.watch(read, checks, module.params['duration_seconds'],
                                     module.params['interval_seconds'], module.params['availability_pct'],
                                     module.params['stop_on_breach'], errors=(ConnectionError, ValueError, OSError))
            module.exit_json(changed=False, network_os=network_os, passed=result['healthy'], **result)
        facts = read()
    except (ConnectionError, ValueError, OSError) as exc:
        module.fail_json(msg='network_check: could not read the device state: %s' % exc)
    results = [net_checks.evaluate(check, facts) for check in checks]
    out = dict(changed=False, network_os=network_os, results=results)
    if rules:
        config = net_checks.intended(facts['config'], module.params['candidate'])
        out['standard'] = security_compare.compare(None, {'config': config}, rules=rules,
                                                   fail_on_severity=module.params['fail_on_severity'])
        out['standard']['evaluated'] = 'running+candidate' if module.params['candidate'] else 'running'
        out['standard']['rules_evaluated'] = [rule.get('id') for rule in rules]
    out['passed'] = all(r['passed'] for r in results) and out.get('standard', {}).get('passed', True)
    module.exit_json(**out)


if __name__ == '__main__':
    main()
