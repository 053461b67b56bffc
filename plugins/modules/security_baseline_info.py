#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: security_baseline_info
short_description: Take a security baseline snapshot of a Linux host and compare it with an earlier one
version_added: 0.1.0
description:
  - Reads the security-relevant state of a host (SOP step 4.2, ISO 27001 A.8.29, NIST SI-2) and
    returns it as a snapshot that can be stored before a change and compared after it.
  - "The snapshot holds: listening TCP/UDP sockets with the owning process (read from C(/proc),
    no C(ss) needed), enabled systemd units, setuid/setgid files under O(setuid_paths),
    world-writable files and directories (without sticky bit) under O(world_writable_paths),
    accounts with uid 0, a digest and the entries of C(/etc/sudoers) and C(/etc/sudoers.d),
    the effective C(sshd) configuration from C(sshd -T) when C(sshd) is installed, and mode,
    owner, group and SHA-256 of O(files)."
  - When O(baseline) is given the module also compares the snapshot with it and evaluates the
    configuration-standard O(rules) (the company's I(Dokumen Standar Konfigurasi Sistem) as data).
    Each finding has a severity; findings at or above O(fail_on_severity) block the gate.
    A new listening port or a new setuid/setgid file is a C(high) finding unless it is listed in
    O(declared_ports) or O(declared_setuid).
  - The module never fails because the gate does not pass; it returns RV(comparison.passed) and
    the caller decides. It fails only on bad options or when the host cannot be read.
  - The module only reads; it always returns C(changed=false).
author:
  - itsop.change engineers (@itsop)
extends_documentation_fragment:
  - itsop.change.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: The module only reads; it does the same in check mode.
  platform:
    details: Linux with C(/proc) and systemd; units are skipped when C(systemctl) is missing.
options:
  files:
    description: Files whose mode, owner, group and SHA-256 are recorded (for example the change's config files).
    type: list
    elements: path
    default: []
  setuid_paths:
    description: Directories searched (recursively, without crossing file systems) for setuid/setgid files.
    type: list
    elements: path
    default: [/bin, /sbin, /usr/bin, /usr/sbin, /usr/lib, /usr/libexec, /usr/local, /opt]
  world_writable_paths:
    description: Directories searched (recursively, without crossing file systems) for world-writable files.
    type: list
    elements: path
    default: [/etc, /bin, /sbin, /usr, /lib, /opt, /boot]
  exclude_paths:
    description: Path prefixes skipped by both searches.
    type: list
    elements: path
    default: [/proc, /sys, /dev, /run]
  baseline:
    description:
      - A snapshot taken earlier by this module (its RV(snapshot) value). When given, the module
        returns RV(comparison).
    type: dict
  compare_rules_only:
    description:
      - Evaluate O(rules) even when O(baseline) is not given (RV(comparison.baseline_compared) is then V(false)).
    type: bool
    default: false
  declared_ports:
    description:
      - New listening ports the change is allowed to open, as V(8080), V(8080/tcp) or V(53/udp).
    type: list
    elements: raw
    default: []
  declared_setuid:
    description: New setuid/setgid files the change is allowed to add (absolute paths).
    type: list
    elements: path
    default: []
  config_files:
    description:
      - The change's configuration files. Mode, owner and group changes between baseline and now are
        findings; rules of check C(config_files_mode) apply to them. They are added to O(files).
    type: list
    elements: path
    default: []
  rules:
    description:
      - Configuration-standard rules (see C(docs/config-standard.md)). Each rule is a dict with
        C(id), C(title), C(severity) (V(info), V(low), V(medium), V(high), V(critical)), C(check)
        and the check's own keys.
      - "Checks: C(forbidden_ports) (C(ports)), C(forbidden_services) (C(services)),
        C(uid0_accounts) (C(allowed)), C(file_mode) (C(path), C(max_mode), C(owner), C(group),
        C(required)), C(config_files_mode) (C(max_mode), C(owner), C(group)), C(no_world_writable),
        C(sshd_option) (C(key), C(allowed); skipped without sshd), C(sudoers_forbidden) (C(pattern)),
        C(setuid_allowed) (C(paths))."
    type: list
    elements: dict
    default: []
  fail_on_severity:
    description: Lowest severity that blocks the security gate.
    type: str
    choices: [info, low, medium, high, critical]
    default: high
'''

EXAMPLES = r'''
- name: Capture the baseline before the change
  itsop.change.security_baseline_info:
    files:
      - /etc/itsop-demo-web/config.ini
  register: baseline

- name: Compare after the change, with the configuration standard
  itsop.change.security_baseline_info:
    baseline: "{{ baseline.snapshot }}"
    declared_ports: ["9090/tcp"]
    config_files:
      - /etc/itsop-demo-web/config.ini
    rules: "{{ (lookup('ansible.builtin.file', 'config_standard.yml') | from_yaml).rules }}"
  register: after

- name: Fail the security gate
  ansible.builtin.assert:
    that: after.comparison.passed
    fail_msg: "{{ after.comparison.blocking }}"
'''

RETURN = r'''
snapshot:
  description: The security state of the host.
  returned: always
  type: dict
  contains:
    schema:
      description: Snapshot format version.
      type: int
      sample: 1
    captured_at:
      description: UTC time of the snapshot (ISO 8601).
      type: str
      sample: "2026-11-24T15:04:05Z"
    hostname:
      description: Host name as the host reports it.
      type: str
    listening:
      description: Listening sockets, each C({proto, address, port, process, pid}).
      type: list
      elements: dict
      sample: [{"proto": "tcp", "address": "0.0.0.0", "port": 8080, "process": "python3", "pid": 42}]
    services_enabled:
      description: Enabled systemd units (services, sockets, timers).
      type: list
      elements: str
    setuid_files:
      description: Setuid/setgid files, each C({path, mode, owner, group, setuid, setgid}).
      type: list
      elements: dict
    world_writable:
      description: World-writable files and directories without sticky bit, each C({path, mode, type}).
      type: list
      elements: dict
    uid0_accounts:
      description: Account names with uid 0.
      type: list
      elements: str
    sudoers:
      description: C({digest, entries, files}) of the sudoers configuration.
      type: dict
    sshd:
      description: C({present, config, error}); C(config) maps lower-case keys of C(sshd -T) to values.
      type: dict
    files:
      description: Per path C({exists, mode, owner, group, sha256}).
      type: dict
comparison:
  description: Result of comparing with O(baseline) and evaluating O(rules).
  returned: when O(baseline) is given or O(compare_rules_only=true)
  type: dict
  contains:
    passed:
      description: Whether no finding reaches O(fail_on_severity).
      type: bool
    baseline_compared:
      description: Whether a baseline was compared.
      type: bool
    findings:
      description: Findings, each C({id, category, severity, title, subject, detail, blocking}).
      type: list
      elements: dict
    blocking:
      description: "C(<id>: <title>) of every blocking finding."
      type: list
      elements: str
      sample: ["new-listening-port: new listening port 9090/tcp on 0.0.0.0 (process python3) not declared"]
    counts:
      description: Number of findings per severity.
      type: dict
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._baseline.snapshot import (  # noqa: E402
    option_errors,
    take_snapshot,
)
from ansible_collections.itsop.change.plugins.module_utils.security_compare import CompareError, compare  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type='list', elements='path', default=[]),
            setuid_paths=dict(type='list', elements='path',
                              default=['/bin', '/sbin', '/usr/bin', '/usr/sbin', '/usr/lib', '/usr/libexec',
                                       '/usr/local', '/opt']),
            world_writable_paths=dict(type='list', elements='path',
                                      default=['/etc', '/bin', '/sbin', '/usr', '/lib', '/opt', '/boot']),
            exclude_paths=dict(type='list', elements='path',
                               default=['/proc', '/sys', '/dev', '/run']),
            baseline=dict(type='dict'),
            compare_rules_only=dict(type='bool', default=False),
            declared_ports=dict(type='list', elements='raw', default=[]),
            declared_setuid=dict(type='list', elements='path', default=[]),
            config_files=dict(type='list', elements='path', default=[]),
            rules=dict(type='list', elements='dict', default=[]),
            fail_on_severity=dict(type='str', default='high', choices=['info', 'low', 'medium', 'high', 'critical']),
        ),
        supports_check_mode=True,
    )
    params = module.params

    errors = option_errors(params)
    if errors:
        module.fail_json(msg='invalid options: ' + '; '.join(errors))
    try:
        snapshot = take_snapshot(module, params)
    except (OSError, IOError) as exc:
        module.fail_json(msg='cannot read the host state: %s' % exc)

    result = dict(changed=False, snapshot=snapshot)
    if params['baseline'] is not None or params['compare_rules_only']:
        try:
            result['comparison'] = compare(
                params['baseline'], snapshot,
                declared_ports=params['declared_ports'], declared_setuid=params['declared_setuid'],
                config_files=params['config_files'], rules=params['rules'],
                fail_on_severity=params['fail_on_severity'])
        except CompareError as exc:
            module.fail_json(msg='comparison failed: %s' % exc, snapshot=snapshot)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
