#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: package_plan_info
short_description: Analyse what a package change would do on a host, without changing it
version_added: 0.1.0
description:
  - Impact analysis for SOP step 1.2 from real data on the host, strictly read-only.
  - Simulates installing the requested package versions (C(apt-get -s install pkg=ver), with
    downgrades allowed) and returns every package the transaction would install, upgrade,
    downgrade or remove, the installed versions now, the services shipped by the changed packages
    (and whether they run), whether a reboot would be needed (a pending C(/run/reboot-required),
    or kernel, libc, systemd, dbus or microcode packages in the transaction), the configuration
    files (dpkg conffiles) of the changed packages with a flag for locally modified ones, the free
    disk space, and a downtime estimate from a simple documented model.
  - The apt index is not refreshed (that would change the host); run C(apt-get update) beforehand
    when the index may be stale.
  - The dnf code path (C(dnf install --assumeno), C(rpm -q)) is written from dnf's documented
    output and is not yet tested on a RHEL-family host.
  - Fails before anything else when the host has neither apt nor dnf, and when a requested
    version is not available, naming the package and version.
author:
  - itsop.change engineers (@itsop)
extends_documentation_fragment:
  - itsop.change.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: The module only reads; it does the same in check mode.
  platform:
    details: Debian family (apt, tested) and RHEL family (dnf, untested).
options:
  packages:
    description: Packages and the exact versions the change installs.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Package name.
        type: str
        required: true
      version:
        description: Exact version (Debian version string, or C(version-release) for dnf).
        type: str
        required: true
      service:
        description: Service of the package, added to O(services) (as in the change request).
        type: str
      services:
        description: Services of the package, added to O(services).
        type: list
        elements: str
  package_files:
    description: Package files already on the host (.deb or .rpm) that the change installs.
    type: list
    elements: path
    default: []
  services:
    description: Services the change declares in addition to those found in the package files.
    type: list
    elements: str
    default: []
  manager:
    description: Package manager; V(auto) picks apt-get, else dnf.
    type: str
    choices: [auto, apt, dnf]
    default: auto
  disk_paths:
    description: Paths whose free space is reported.
    type: list
    elements: path
    default: [/, /var, /var/cache/apt/archives]
  downtime_model:
    description:
      - Override values of the downtime model, in seconds. Keys C(base_seconds),
        C(per_package_seconds), C(per_service_restart_seconds), C(reboot_seconds),
        C(health_check_seconds). No package change gives 0.
      - An unknown key, or a value that is not a number of seconds (0 or more), fails the module
        before the host is queried.
    type: dict
    default: {}
'''

EXAMPLES = r'''
- name: Analyse the change on every target host (read-only)
  itsop.change.package_plan_info:
    packages:
      - {name: itsop-demo-web, version: "1.1.0"}
    services: [itsop-demo-web]
  register: __plan
'''

RETURN = r'''
manager:
  description: The package manager used, V(apt) or V(dnf).
  returned: success
  type: str
  sample: apt
current:
  description: Installed version of every requested package (null when not installed).
  returned: success
  type: dict
  sample: {itsop-demo-web: "1.0.0"}
changes:
  description: Every package the transaction would change.
  returned: success
  type: list
  elements: dict
  sample: [{name: itsop-demo-web, action: upgrade, from: "1.0.0", to: "1.1.0", arch: all}]
services:
  description: Services affected by the change (shipped by changed packages or declared), with their state.
  returned: success
  type: list
  elements: dict
  sample: [{name: itsop-demo-web, active: true, restart: true}]
reboot_required:
  description: Whether a reboot would be needed.
  returned: success
  type: bool
  sample: false
reboot_reasons:
  description: Why a reboot would be needed.
  returned: success
  type: list
  elements: str
  sample: []
config_files:
  description: Configuration files (dpkg conffiles / rpm config files) of the changed packages.
  returned: success
  type: list
  elements: dict
  sample: [{path: /etc/itsop-demo-web/config.ini, package: itsop-demo-web, modified: false}]
disk:
  description: Free and total bytes per path of O(disk_paths).
  returned: success
  type: dict
  sample: {"/": {free_bytes: 1000000, total_bytes: 2000000}}
download_bytes:
  description: Bytes to download for the changed packages (apt only; 0 when unknown).
  returned: success
  type: int
  sample: 4096
downtime:
  description: Downtime estimate in seconds with the model and its terms.
  returned: success
  type: dict
  sample: {seconds: 70, terms: {base: 30, packages: 15, service_restarts: 10, reboot: 0, health_check: 15}}
simulation:
  description: The simulation command that ran.
  returned: success
  type: list
  elements: str
  sample: [apt-get, -s, install, itsop-demo-web=1.1.0]
'''

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils.package_plan import (  # noqa: E402
    disk_free,
    downtime_model,
    estimate_downtime,
    file_md5,
    needs_reboot,
    parse_apt_simulation,
    parse_conffiles,
    parse_dnf_transaction,
    service_units_from_files,
)

APT_ENV = {'LANG': 'C', 'LC_ALL': 'C', 'DEBIAN_FRONTEND': 'noninteractive'}


class Planner(object):
    def __init__(self, module):
        self.module = module

    def run(self, cmd, ok_rcs=(0,)):
        rc, out, err = self.module.run_command(cmd, environ_update=APT_ENV)
        if rc not in ok_rcs:
            self.module.fail_json(msg='%s failed (rc=%d): %s' % (' '.join(cmd), rc, (err or out).strip()),
                                  cmd=cmd, rc=rc, stdout=out, stderr=err)
        return rc, out, err


class AptPlanner(Planner):
    name = 'apt'

    def current(self, name):
        rc, out, _err = self.module.run_command(
            ['dpkg-query', '-W', '-f', '${db:Status-Abbrev}\t${Version}\n', name], environ_update=APT_ENV)
        if rc != 0:
            return None
        for line in out.splitlines():
            status, _sep, version = line.partition('\t')
            if status.startswith('ii') or status.startswith('hi'):
                return version
        return None

    def simulate(self, packages, files):
        cmd = [self.module.get_bin_path('apt-get', required=True), '-s', '-q', '-y', '--allow-downgrades',
               '-o', 'Debug::NoLocking=1', 'install']
        cmd += ['%s=%s' % (p['name'], p['version']) for p in packages] + list(files)
        rc, out, err = self.module.run_command(cmd, environ_update=APT_ENV)
        if rc != 0:
            self.module.fail_json(msg='simulating the change failed: %s' % (err or out).strip(), cmd=cmd, rc=rc)
        return cmd, parse_apt_simulation(out)

    def files(self, name):
        rc, out, _err = self.module.run_command(['dpkg-query', '-L', name], environ_update=APT_ENV)
        return out.splitlines() if rc == 0 else []

    def config_files(self, name):
        rc, out, _err = self.module.run_command(
            ['dpkg-query', '-W', '-f', '${Conffiles}\n', name], environ_update=APT_ENV)
        result = []
        if rc != 0:
            return result
        for entry in parse_conffiles(out):
            current = file_md5(entry['path'])
            result.append({'path': entry['path'], 'package': name, 'obsolete': entry['obsolete'],
                           'exists': current is not None,
                           'modified': current is not None and current != entry['md5']})
        return result

    def download_bytes(self, changes):
        total = 0
        for change in changes:
            if not change.get('to'):
                continue
            rc, out, _err = self.module.run_command(
                ['apt-cache', 'show', '%s=%s' % (change['name'], change['to'])], environ_update=APT_ENV)
            if rc != 0:
                continue
            for line in out.splitlines():
                if line.startswith('Size:'):
                    total += int(line.split(':', 1)[1].strip() or 0)
                    break
        return total


class DnfPlanner(Planner):
    """dnf code path: written from dnf's documented output, not yet tested on a RHEL-family host."""
    name = 'dnf'

    def current(self, name):
        rc, out, _err = self.module.run_command(
            ['rpm', '-q', '--qf', '%{VERSION}-%{RELEASE}\n', name], environ_update=APT_ENV)
        return out.strip().splitlines()[0] if rc == 0 and out.strip() else None

    def simulate(self, packages, files):
        cmd = [self.module.get_bin_path('dnf', required=True), '-q', 'install', '--assumeno', '--allowerasing']
        cmd += ['%s-%s' % (p['name'], p['version']) for p in packages] + list(files)
        rc, out, err = self.module.run_command(cmd, environ_update=APT_ENV)
        if rc not in (0, 1) or 'No match for argument' in (out + err):
            self.module.fail_json(msg='simulating the change failed: %s' % (err or out).strip(), cmd=cmd, rc=rc)
        changes = parse_dnf_transaction(out)
        for change in changes:
            change['from'] = self.current(change['name'])
        return cmd, changes

    def files(self, name):
        rc, out, _err = self.module.run_command(['rpm', '-ql', name], environ_update=APT_ENV)
        return out.splitlines() if rc == 0 else []

    def config_files(self, name):
        _rc, out, _err = self.module.run_command(['rpm', '-V', '--nodeps', '--nomtime', name],
                                                 environ_update=APT_ENV)
        modified = set(line.split()[-1] for line in out.splitlines() if ' c /' in line)
        _rc, out, _err = self.module.run_command(['rpm', '-qc', name], environ_update=APT_ENV)
        return [{'path': path, 'package': name, 'obsolete': False, 'exists': os.path.exists(path),
                 'modified': path in modified} for path in out.splitlines() if path.startswith('/')]

    def download_bytes(self, changes):
        return 0


def main():
    module = AnsibleModule(
        argument_spec=dict(
            packages=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                version=dict(type='str', required=True),
                service=dict(type='str'),
                services=dict(type='list', elements='str'),
            )),
            package_files=dict(type='list', elements='path', default=[]),
            services=dict(type='list', elements='str', default=[]),
            manager=dict(type='str', choices=['auto', 'apt', 'dnf'], default='auto'),
            disk_paths=dict(type='list', elements='path', default=['/', '/var', '/var/cache/apt/archives']),
            downtime_model=dict(type='dict', default={}),
        ),
        required_one_of=[('packages', 'package_files')],
        supports_check_mode=True,
    )
    p = module.params
    try:
        downtime_model(p['downtime_model'])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    manager = p['manager']
    if manager == 'auto':
        if module.get_bin_path('apt-get'):
            manager = 'apt'
        elif module.get_bin_path('dnf'):
            manager = 'dnf'
        else:
            module.fail_json(msg='unsupported host: neither apt-get nor dnf found; no change is planned')
    planner = AptPlanner(module) if manager == 'apt' else DnfPlanner(module)

    current = dict((pkg['name'], planner.current(pkg['name'])) for pkg in p['packages'])
    cmd, changes = planner.simulate(p['packages'], p['package_files'])
    changed_names = [c['name'] for c in changes]

    service_names = list(p['services'])
    for pkg in p['packages']:
        for name in ([pkg['service']] if pkg['service'] else []) + list(pkg['services'] or []):
            if name not in service_names:
                service_names.append(name)
    config_files = []
    for name in changed_names:
        for unit in service_units_from_files(planner.files(name)):
            if unit not in service_names:
                service_names.append(unit)
        config_files.extend(planner.config_files(name))
    services = []
    systemctl = module.get_bin_path('systemctl')
    for name in service_names:
        active = None
        if systemctl:
            rc, _out, _err = module.run_command([systemctl, 'is-active', '--quiet', name])
            active = rc == 0
        services.append({'name': name, 'active': active, 'restart': bool(changes)})

    reasons = []
    if os.path.exists('/run/reboot-required') or os.path.exists('/var/run/reboot-required'):
        reasons.append('a reboot is already pending (/run/reboot-required)')
    for name in needs_reboot(changed_names):
        reasons.append('package %s needs a reboot to take effect' % name)

    downtime = estimate_downtime(changes, [s for s in services if s['restart']], bool(reasons),
                                 p['downtime_model'])
    module.exit_json(
        changed=False, manager=planner.name, current=current, changes=changes, services=services,
        reboot_required=bool(reasons), reboot_reasons=reasons, config_files=config_files,
        disk=disk_free(p['disk_paths']), download_bytes=planner.download_bytes(changes),
        downtime=downtime, simulation=cmd,
    )


if __name__ == '__main__':
    main()
