# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The installed package versions recorded with a snapshot (dpkg or rpm)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import subprocess

from ansible_collections.itsop.change.plugins.module_utils._backup.tools import which


def package_state():
    """Installed packages as (manager, [{name, arch, version}]) or (None, [])."""
    if which('dpkg-query'):
        proc = subprocess.run(
            [which('dpkg-query'), '-W', '-f=${Package}\t${Architecture}\t${Version}\t${db:Status-Abbrev}\n'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if proc.returncode == 0:
            pkgs = []
            for line in proc.stdout.decode('utf-8', 'replace').splitlines():
                parts = line.split('\t')
                if len(parts) == 4 and parts[3].strip().startswith('ii'):
                    pkgs.append({'name': parts[0], 'arch': parts[1], 'version': parts[2]})
            return 'dpkg', sorted(pkgs, key=lambda p: (p['name'], p['arch']))
    if which('rpm'):
        proc = subprocess.run(
            [which('rpm'), '-qa', '--qf', '%{NAME}\t%{ARCH}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if proc.returncode == 0:
            pkgs = []
            for line in proc.stdout.decode('utf-8', 'replace').splitlines():
                parts = line.split('\t')
                if len(parts) == 3:
                    pkgs.append({'name': parts[0], 'arch': parts[1], 'version': parts[2]})
            return 'rpm', sorted(pkgs, key=lambda p: (p['name'], p['arch']))
    return None, []
