# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The security snapshot of security_baseline_info: its options checked, its collectors run, its comparison."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import socket
import time

from ansible_collections.itsop.change.plugins.module_utils._baseline.accounts import sudoers, uid0_accounts
from ansible_collections.itsop.change.plugins.module_utils._baseline.files import (
    file_info, setuid_files, world_writable)
from ansible_collections.itsop.change.plugins.module_utils._baseline.sockets import listening_sockets
from ansible_collections.itsop.change.plugins.module_utils._baseline.sshd import sshd_config
from ansible_collections.itsop.change.plugins.module_utils._baseline.units import enabled_units
from ansible_collections.itsop.change.plugins.module_utils.security_compare import (
    CompareError,
    parse_declared_port,
    validate_rules,
)


def option_errors(params):
    """What is wrong with the module's options (rules, declared ports, baseline); empty when nothing."""
    errors = validate_rules(params['rules'])
    for index, port in enumerate(params['declared_ports']):
        try:
            parse_declared_port(port)
        except CompareError as exc:
            errors.append('declared_ports[%d]: %s' % (index, exc))
    if params['baseline'] is not None and not isinstance(params['baseline'].get('listening'), list):
        errors.append('baseline does not look like a snapshot of this module (no listening list)')
    return errors


def watched_paths(params):
    """The files whose mode, owner and hash the snapshot records: O(files), config files, file_mode rules."""
    paths = list(params['files'])
    for path in params['config_files'] + [r['path'] for r in params['rules'] if r.get('check') == 'file_mode']:
        if path not in paths:
            paths.append(path)
    return paths


def take_snapshot(module, params):
    """The snapshot of the host's security state (raises OSError/IOError when the host cannot be read)."""
    excludes = params['exclude_paths']
    return dict(
        schema=1,
        captured_at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        hostname=socket.gethostname(),
        listening=listening_sockets(),
        services_enabled=enabled_units(module),
        setuid_files=setuid_files(params['setuid_paths'], excludes),
        world_writable=world_writable(params['world_writable_paths'], excludes),
        uid0_accounts=uid0_accounts(),
        sudoers=sudoers(),
        sshd=sshd_config(module),
        files=dict((path, file_info(path)) for path in watched_paths(params)),
    )
