#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: frr_checkpoint
short_description: Checkpoints of an FRRouting configuration, and confirm-or-revert with a timer on the router
version_added: 1.1.0
description:
  - Gives an FRRouting router what Junos C(commit confirmed) and Cisco C(configure replace ... revert
    timer) give theirs - a change that the controller does not confirm in time is undone by the
    device itself, even when the change cut the path the controller uses to reach it.
  - V(saved) saves the running configuration as checkpoint O(checkpoint) (C(show running-config) byte
    for byte) under O(state_dir); the backup role fetches it from there.
  - V(armed) saves the running configuration (C(show running-config), byte for byte, and as a
    configuration file for C(frr-reload.py)) under O(state_dir) and starts a systemd timer on the
    device that runs C(frr-reload.py --reload) with the saved file after O(timeout) seconds. Arming a
    change whose timer is already running changes nothing (the configuration saved first is kept).
  - V(confirmed) stops the timer and writes the running configuration to the startup configuration
    (C(write memory)). It fails when the timer has already fired - the device has reverted and the
    change is not in place.
  - V(reverted) stops the timer and, unless the device has already returned to the saved
    configuration, reloads it now (a checkpoint copied back from the backup store works the same,
    that is how a rollback restores the configuration of stage 2); it fails unless the running
    configuration is then byte-identical to the saved one. RV(reverted_by) says whether the device
    (timer) or the controller did it.
  - Runs on the router's Linux side (as root, over SSH), not through the vtysh CLI - vtysh cannot
    start timers. The roles of this collection call it only for C(ansible_network_os=itsop.change.frr).
author:
  - itsop.change engineers (@itsop)
options:
  checkpoint:
    description:
      - Name of the checkpoint, usually the change id; names the timer (C(itsop-revert-<checkpoint>))
        and the saved file C(<state_dir>/<checkpoint>.running).
      - Letters, digits, C(.), C(_) and C(-), at most 64 characters.
    type: str
    required: true
  state:
    description:
      - V(saved), V(armed), V(confirmed) or V(reverted), see the description.
    type: str
    choices: [saved, armed, confirmed, reverted]
    required: true
  timeout:
    description:
      - Seconds after arming at which the device reverts by itself. Only for O(state=armed).
    type: int
    default: 120
  state_dir:
    description:
      - Directory on the router for the saved configurations (made with mode 0700; the files are
        0600, a configuration may hold BGP passwords).
    type: path
    default: /var/lib/itsop/network
  frr_reload:
    description:
      - Path of FRR's C(frr-reload.py) (Debian package C(frr-pythontools)).
    type: path
    default: /usr/lib/frr/frr-reload.py
extends_documentation_fragment:
  - itsop.change.attributes
  - ansible.builtin.action_common_attributes
attributes:
  diff_mode:
    support: none
  platform:
    platforms: posix
    details: An FRRouting 8 router with systemd, reached as root over SSH.
notes:
  - The timer is a transient systemd unit; it survives the loss of every SSH session but not a reboot
    of the router (after a reboot FRR starts from the startup configuration, which is written only on
    V(confirmed), so an unconfirmed change is gone then too).
  - After a revert by C(frr-reload.py), FRR also writes the reverted configuration as startup
    configuration.
seealso:
  - module: ansible.netcommon.cli_config
  - plugin: itsop.change.frr
    plugin_type: cliconf
'''

EXAMPLES = r'''
- name: Arm the revert timer before the change (the device reverts by itself after 2 minutes)
  itsop.change.frr_checkpoint:
    checkpoint: CHG-2026-0101
    state: armed
    timeout: 120
  vars:
    ansible_connection: ansible.builtin.ssh
    ansible_user: root

- name: Confirm once the checks passed
  itsop.change.frr_checkpoint:
    checkpoint: CHG-2026-0101
    state: confirmed
  vars:
    ansible_connection: ansible.builtin.ssh
    ansible_user: root
'''

RETURN = r'''
unit:
  description: Name of the systemd timer unit.
  returned: always
  type: str
  sample: itsop-revert-CHG-2026-0101.timer
timer:
  description: V(armed) (waiting), V(fired) (the device has run the revert), V(failed) (the revert ran and
    failed) or V(none).
  returned: always
  type: str
deadline:
  description: Epoch seconds at which an armed timer fires.
  returned: when armed
  type: int
saved_sha256:
  description: SHA-256 of the saved C(show running-config) output.
  returned: when a configuration is saved
  type: str
running_sha256:
  description: SHA-256 of the C(show running-config) output now.
  returned: always
  type: str
identical:
  description: Whether the running configuration is byte-identical to the saved one.
  returned: when a configuration is saved
  type: bool
path:
  description: Path of the saved checkpoint on the router (C(show running-config) output).
  returned: when state is saved
  type: str
  sample: /var/lib/itsop/network/CHG-2026-0101.running
reverted_by:
  description: V(device_timer) or V(controller) (for O(state=reverted)).
  returned: when state is reverted
  type: str
config_diff:
  description:
    - The change as the device made it - unified diff of the configuration saved when the timer was armed and
      the running configuration confirmed, with the value of every line that sets a secret (password, secret,
      community, key) replaced by C(<redacted>). At most 400 lines.
  returned: when state is confirmed
  type: str
  sample: "--- before\n+++ after\n@@ -20,2 +20,3 @@\n+ip route 198.51.100.0/24 Null0\n"
'''

import hashlib  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._network import configtext  # noqa: E402

ID_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,63}')
HEADER_END = b'Current configuration:\n'


def _sha(data):
    return hashlib.sha256(data).hexdigest()


class Device(object):
    def __init__(self, module, checkpoint):
        self.module = module
        self.unit = 'itsop-revert-%s' % checkpoint
        base = os.path.join(module.params['state_dir'], checkpoint)
        self.running_path = base + '.running'
        self.config_path = base + '.rollback.conf'

    def run(self, argv, what):
        rc, out, err = self.module.run_command(argv, binary_data=True, encoding=None)
        if rc != 0:
            detail = (err or out).decode('utf-8', 'replace').strip()[-400:]
            self.module.fail_json(msg='%s failed (rc %d): %s' % (what, rc, detail),
                                  unit=self.unit + '.timer')
        return out

    def running(self):
        out = self.run(['vtysh', '-c', 'show running-config'], 'vtysh show running-config')
        if HEADER_END not in out:
            self.module.fail_json(msg='vtysh show running-config printed no configuration header: is FRR running?')
        return out

    def saved(self):
        try:
            with open(self.running_path, 'rb') as handle:
                return handle.read()
        except (IOError, OSError):
            return None

    def _unit(self, name):
        out = self.module.run_command(['systemctl', 'show', '--property=ActiveState',
                                      '--property=Result', name])[1]
        return dict(line.split('=', 1) for line in out.splitlines() if '=' in line)

    def unit_state(self):
        timer = self._unit(self.unit + '.timer')
        service = self._unit(self.unit + '.service')
        if service.get('ActiveState') == 'failed' or service.get('Result', 'success') != 'success':
            return 'failed'
        if service.get('ActiveState') in ('active', 'activating'):
            return 'fired'
        if timer.get('ActiveState') == 'active':
            return 'armed'
        return 'none'

    def clear(self):
        self.module.run_command(['systemctl', 'stop', self.unit + '.timer', self.unit + '.service'])
        self.module.run_command(['systemctl', 'reset-failed', self.unit + '.timer', self.unit + '.service'])

    def save(self, running):
        directory = os.path.dirname(self.running_path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        config = running.split(HEADER_END, 1)[1]
        for path, data in ((self.running_path, running), (self.config_path, config)):
            tmp = path + '.tmp'
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, 'wb') as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(tmp, path)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checkpoint=dict(type='str', required=True),
            state=dict(type='str', required=True, choices=['saved', 'armed', 'confirmed', 'reverted']),
            timeout=dict(type='int', default=120),
            state_dir=dict(type='path', default='/var/lib/itsop/network'),
            frr_reload=dict(type='path', default='/usr/lib/frr/frr-reload.py'),
        ),
        supports_check_mode=True,
    )
    checkpoint = module.params['checkpoint']
    if not ID_RE.fullmatch(checkpoint):
        module.fail_json(msg='checkpoint %r: only letters, digits, ".", "_" and "-", at most 64 characters'
                             % checkpoint)
    state = module.params['state']
    timeout = module.params['timeout']
    if state == 'armed' and not 10 <= timeout <= 86400:
        module.fail_json(msg='timeout %d: between 10 and 86400 seconds' % timeout)
    device = Device(module, checkpoint)
    running = device.running()
    saved = device.saved()
    timer = device.unit_state()
    result = dict(changed=False, unit=device.unit + '.timer', timer=timer, running_sha256=_sha(running))
    if saved is not None:
        if HEADER_END not in saved:
            module.fail_json(msg='%s is not the output of show running-config (no "Current configuration:" line)'
                                 % device.running_path, **result)
        result.update(saved_sha256=_sha(saved), identical=saved == running)

    if state == 'saved':
        if timer == 'armed':
            module.fail_json(msg='the revert timer of %s is armed: confirm or revert first' % checkpoint, **result)
        result['changed'] = saved != running
        if result['changed'] and not module.check_mode:
            device.save(running)
            result.update(saved_sha256=_sha(running), identical=True)
        module.exit_json(path=device.running_path, **result)

    if state == 'armed':
        if timer == 'armed':
            module.exit_json(msg='the revert timer is already armed; the configuration saved first is kept', **result)
        if not os.path.isfile(module.params['frr_reload']):
            module.fail_json(msg='%s not found (Debian package frr-pythontools)' % module.params['frr_reload'],
                             **result)
        result['changed'] = True
        if module.check_mode:
            module.exit_json(msg='would save the running configuration and arm the revert timer', **result)
        device.clear()
        device.save(running)
        deadline = int(time.time()) + timeout
        device.run(['systemd-run', '--quiet', '--unit', device.unit, '--on-active=%ds' % timeout,
                    '--timer-property=AccuracySec=1s', '--property=RemainAfterExit=yes',
                    '--description=itsop.change: revert to %s unless confirmed' % checkpoint,
                    '/usr/bin/python3', module.params['frr_reload'], '--reload', device.config_path],
                   'systemd-run (arming the revert timer)')
        result.update(timer=device.unit_state(), deadline=deadline, saved_sha256=_sha(running), identical=True)
        if result['timer'] != 'armed':
            module.fail_json(msg='the revert timer did not start (state %s)' % result['timer'], **result)
        module.exit_json(**result)

    if state == 'confirmed':
        if timer in ('fired', 'failed'):
            module.fail_json(msg='the revert timer has already fired (%s): the device went back to the saved '
                                 'configuration, the change is not in place' % timer, **result)
        if timer == 'none':
            module.fail_json(msg='no revert timer is armed for %s: nothing to confirm' % checkpoint, **result)
        result['changed'] = True
        if saved is not None:
            result['config_diff'] = configtext.diff(
                saved.split(HEADER_END, 1)[-1].decode('utf-8', 'replace'),
                running.split(HEADER_END, 1)[-1].decode('utf-8', 'replace'),
                '%s before' % checkpoint, '%s confirmed' % checkpoint)
        if not module.check_mode:
            device.clear()
            device.run(['vtysh', '-c', 'write memory'], 'vtysh write memory')
            result['timer'] = device.unit_state()
        module.exit_json(**result)

    # reverted
    if saved is None:
        module.fail_json(msg='no saved configuration for %s under %s: nothing to revert to'
                             % (checkpoint, module.params['state_dir']), **result)
    result['reverted_by'] = 'device_timer' if timer == 'fired' and saved == running else 'controller'
    if saved == running:
        if timer != 'none':
            result['changed'] = True
            if not module.check_mode:
                device.clear()
                result['timer'] = device.unit_state()
        module.exit_json(**result)
    result['changed'] = True
    if module.check_mode:
        module.exit_json(msg='would reload the saved configuration', **result)
    device.clear()
    device.save(saved)  # the configuration file for frr-reload.py, made again from the saved output
    device.run(['/usr/bin/python3', module.params['frr_reload'], '--reload', device.config_path],
               'frr-reload.py --reload (restoring the saved configuration)')
    after = device.running()
    result.update(running_sha256=_sha(after), identical=after == saved, timer=device.unit_state())
    if after != saved:
        module.fail_json(msg='after the reload the running configuration still differs from the saved one',
                         **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
