# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The effective sshd configuration (sshd -T), when sshd is installed."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


def sshd_config(module):
    sshd = module.get_bin_path('sshd', opt_dirs=['/usr/sbin', '/sbin'])
    if not sshd:
        return dict(present=False, config={}, error=None)
    rc, out, err = module.run_command([sshd, '-T'])
    if rc != 0:
        return dict(present=True, config={}, error='sshd -T failed (rc=%d): %s' % (rc, err.strip()))
    config = {}
    for line in out.splitlines():
        key, _sep, value = line.strip().partition(' ')
        if not key:
            continue
        key = key.lower()
        if key in config:
            config[key] = config[key] + ',' + value
        else:
            config[key] = value
    return dict(present=True, config=config, error=None)
