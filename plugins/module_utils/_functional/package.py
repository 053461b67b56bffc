# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A package check: the installed versions of a package (dpkg-query on apt systems, rpm otherwise) and
whether the expected version is one of them. ``1.1.0`` matches ``1.1.0`` and ``1.1.0-<release>``."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DPKG_FORMAT = '${db:Status-Status}\t${Version}\n'


def package_manager(host, choice):
    """(manager, path of its query tool); ``auto`` is dpkg when dpkg-query is on the host, else rpm."""
    if choice in ('auto', 'dpkg'):
        path = host.get_bin_path('dpkg-query')
        if path or choice == 'dpkg':
            return 'dpkg', path
    return 'rpm', host.get_bin_path('rpm')


def installed_versions(host, manager, tool, name):
    """The installed versions of ``name`` (empty when not installed)."""
    if manager == 'dpkg':
        rc, out = host.run_command([tool, '-W', '-f', DPKG_FORMAT, name])[:2]
        if rc != 0:
            return []
        versions = []
        for line in out.splitlines():
            status, _sep, version = line.partition('\t')
            # a removed package keeps a dpkg record (config-files) with a version: not installed
            if status.strip() == 'installed' and version.strip():
                versions.append(version.strip())
        return versions
    rc, out = host.run_command([tool, '-q', '--qf', '%{VERSION}-%{RELEASE}\n', name])[:2]
    if rc != 0:
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def version_matches(want, versions):
    return any(v == want or v.startswith(want + '-') for v in versions)


def package_check(host, check, choice):
    name = check['name']
    want = check.get('version')
    expected = dict(version=want if want is not None else 'any')
    manager, tool = package_manager(host, choice)
    if not tool:
        return dict(passed=False, expected=expected, actual=dict(versions=[], manager=manager),
                    message='%s: no %s on this host to read installed packages'
                    % (name, 'dpkg-query' if manager == 'dpkg' else 'dpkg-query or rpm'))
    versions = installed_versions(host, manager, tool, name)
    passed = bool(versions) and (want is None or version_matches(want, versions))
    return dict(
        passed=passed,
        expected=expected,
        actual=dict(versions=versions, manager=manager),
        message='%s %s (expected %s)' % (name, ', '.join(versions) if versions else 'not installed',
                                         want if want is not None else 'installed'),
    )
