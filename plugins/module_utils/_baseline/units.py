# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The enabled systemd units (services, sockets, timers)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


def enabled_units(module):
    systemctl = module.get_bin_path('systemctl')
    if not systemctl:
        return None
    rc, out, err = module.run_command([systemctl, 'list-unit-files', '--state=enabled',
                                       '--type=service,socket,timer', '--no-legend', '--no-pager'])
    if rc != 0:
        module.fail_json(msg='systemctl list-unit-files failed (rc=%d): %s' % (rc, err.strip()))
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())
