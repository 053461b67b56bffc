# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read-only impact analysis of a package change (SOP step 1.2) for apt and dnf hosts.

Pure parsing and estimation functions (unit-tested) plus the host queries used by the
``itsop.change.package_plan_info`` module. The dnf code path is written from dnf's documented
output format and is NOT yet tested on a RHEL-family host.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import hashlib
import math
import os
import re

# Inst pkg [old] (new repo [arch])  /  Inst pkg (new repo [arch])  /  Remv pkg [old]
_APT_INST_RE = re.compile(r'^Inst (?P<name>\S+) (?:\[(?P<old>[^\]]+)\] )?\((?P<new>\S+)(?P<rest>[^)]*)\)')
_APT_REMV_RE = re.compile(r'^Remv (?P<name>\S+)(?: \[(?P<old>[^\]]+)\])?')

# Packages whose update needs a reboot to take effect (kernel, libc, init system, bus, microcode,
# firmware), by exact name (an apt ":arch" suffix allowed); kernel images also by prefix. Their
# siblings (libc6-dev, systemd-timesyncd, dbus-user-session, kernel-headers ...) do not.
REBOOT_PACKAGES = frozenset([
    'linux-base', 'linux-firmware', 'kernel', 'kernel-core', 'kernel-modules', 'kernel-modules-core',
    'kernel-modules-extra', 'libc6', 'glibc', 'systemd', 'dbus', 'dbus-daemon', 'dbus-broker',
    'intel-microcode', 'amd64-microcode', 'microcode_ctl',
])
REBOOT_PACKAGE_PREFIXES = ('linux-image-', 'linux-modules-')

DEFAULT_DOWNTIME_MODEL = {
    'base_seconds': 30,
    'per_package_seconds': 15,
    'per_service_restart_seconds': 10,
    'reboot_seconds': 180,
    'health_check_seconds': 15,
}


def parse_apt_simulation(text):
    """Parse ``apt-get -s`` output into a list of {name, action, from, to, arch}."""
    changes = []
    for line in text.splitlines():
        match = _APT_INST_RE.match(line)
        if match:
            old = match.group('old')
            new = match.group('new')
            arch = None
            rest = match.group('rest') or ''
            arch_match = re.search(r'\[([^\]]+)\]\s*$', rest.strip())
            if arch_match:
                arch = arch_match.group(1)
            order = None if old is None else compare_versions_simple(old, new)
            if order is None:
                action = 'install'
            elif order > 0:
                action = 'downgrade'
            elif order == 0:
                action = 'reinstall'
            else:
                action = 'upgrade'
            changes.append({'name': match.group('name'), 'action': action, 'from': old, 'to': new, 'arch': arch})
            continue
        match = _APT_REMV_RE.match(line)
        if match:
            changes.append({'name': match.group('name'), 'action': 'remove', 'from': match.group('old'),
                            'to': None, 'arch': None})
    return changes


def _split_version(version):
    """Split a Debian version into (epoch, upstream, revision) as dpkg does.

    A missing epoch is 0 and a missing revision is empty (equal to "0"). A malformed epoch (not
    digits) cannot come from apt; the string is then compared whole with epoch 0 instead of failing,
    because the comparison only labels a change.
    """
    version = str(version).strip()
    epoch = 0
    head, sep, rest = version.partition(':')
    if sep and head.isdigit():
        epoch, version = int(head), rest
    upstream, sep, revision = version.rpartition('-')
    if not sep:
        upstream, revision = revision, ''
    return epoch, upstream, revision


def _order(char):
    """dpkg's character weight: digits 0, letters their code, ~ before everything, others after letters."""
    if char is None or char.isdigit():
        return 0
    if char.isalpha() and char.isascii():
        return ord(char)
    if char == '~':
        return -1
    return ord(char) + 256


def _verrevcmp(a, b):
    """Compare two upstream or revision strings with dpkg's algorithm (lib/dpkg/version.c verrevcmp)."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i] if i < len(a) else None)
            bc = _order(b[j] if j < len(b) else None)
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == '0':
            i += 1
        while j < len(b) and b[j] == '0':
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def compare_versions_simple(a, b):
    """-1/0/1 comparing two Debian version strings in dpkg's order (epoch, upstream, revision; ~ sorts first).

    Used to label a change as upgrade, downgrade or reinstall; apt decides what is installed.
    """
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return 1 if ea > eb else -1
    result = _verrevcmp(ua, ub) or _verrevcmp(ra, rb)
    return (result > 0) - (result < 0)


def parse_dnf_transaction(text):
    """Parse ``dnf install --assumeno`` transaction tables (documented format; untested on hosts)."""
    changes = []
    section = None
    headings = {
        'installing': 'install', 'upgrading': 'upgrade', 'downgrading': 'downgrade',
        'reinstalling': 'reinstall', 'removing': 'remove', 'installing dependencies': 'install',
        'installing weak dependencies': 'install',
    }
    for line in text.splitlines():
        stripped = line.strip().rstrip(':').lower()
        if stripped in headings:
            section = headings[stripped]
            continue
        if not line.startswith(' ') or section is None:
            if stripped.startswith('transaction summary'):
                section = None
            continue
        cols = line.split()
        if len(cols) >= 3:
            changes.append({'name': cols[0], 'action': section, 'from': None, 'to': cols[2], 'arch': cols[1]})
    return changes


def parse_conffiles(text):
    """Parse dpkg-query ``${Conffiles}`` output into [{path, md5, obsolete}]."""
    out = []
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 2 and cols[0].startswith('/'):
            out.append({'path': cols[0], 'md5': cols[1], 'obsolete': 'obsolete' in cols[2:]})
    return out


def file_md5(path):
    digest = hashlib.md5()  # noqa: S324 - dpkg records conffile md5 sums; compared, not trusted
    try:
        with open(path, 'rb') as handle:
            for block in iter(lambda: handle.read(65536), b''):
                digest.update(block)
    except (IOError, OSError):
        return None
    return digest.hexdigest()


def needs_reboot(package_names):
    """The names among package_names (sorted, unique) whose update needs a reboot."""
    found = set()
    for name in package_names:
        base = name.split(':', 1)[0]
        if base in REBOOT_PACKAGES or base.startswith(REBOOT_PACKAGE_PREFIXES):
            found.add(name)
    return sorted(found)


def downtime_model(overrides=None):
    """DEFAULT_DOWNTIME_MODEL with ``overrides`` applied; raises ValueError naming a bad key or value.

    Every value is a number of seconds, 0 or more (numeric strings are accepted, as templating may
    give them); an unknown key is refused instead of being silently ignored.
    """
    values = dict(DEFAULT_DOWNTIME_MODEL)
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_DOWNTIME_MODEL:
            raise ValueError('downtime_model.%s: unknown key; known keys: %s'
                             % (key, ', '.join(sorted(DEFAULT_DOWNTIME_MODEL))))
        number = None
        if not isinstance(value, bool):
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = None
        if number is None or math.isnan(number) or math.isinf(number) or number < 0:
            raise ValueError('downtime_model.%s: must be a number of seconds, 0 or more; got %r' % (key, value))
        values[key] = int(number) if number == int(number) else number
    return values


def estimate_downtime(changes, services, reboot, model=None):
    """Downtime estimate in seconds from the number of packages, restarted services and a reboot.

    The model (DEFAULT_DOWNTIME_MODEL, each value overridable, see downtime_model) is deliberately
    simple and documented in docs/stages-1-3.md:
    base + per_package * packages + per_service_restart * services + reboot (if needed) + health check.
    No package change means no downtime (0).
    """
    values = downtime_model(model)
    if not changes:
        return {'seconds': 0, 'model': values, 'terms': {}}
    terms = {
        'base': values['base_seconds'],
        'packages': values['per_package_seconds'] * len(changes),
        'service_restarts': values['per_service_restart_seconds'] * len(services),
        'reboot': values['reboot_seconds'] if reboot else 0,
        'health_check': values['health_check_seconds'],
    }
    return {'seconds': int(sum(terms.values())), 'model': values, 'terms': terms}


def disk_free(paths):
    out = {}
    for path in paths:
        probe = path
        while probe and not os.path.exists(probe):
            probe = os.path.dirname(probe)
        try:
            st = os.statvfs(probe or '/')
        except OSError:
            continue
        out[path] = {'free_bytes': st.f_bavail * st.f_frsize, 'total_bytes': st.f_blocks * st.f_frsize}
    return out


def service_units_from_files(files):
    """systemd unit names (and SysV scripts) among a package's file list."""
    units = []
    for path in files:
        base = os.path.basename(path)
        if re.match(r'^/(usr/)?lib/systemd/system/[^/]+\.service$', path) and '@' not in base:
            units.append(base[:-len('.service')])
        elif path.startswith('/etc/init.d/') and base not in ('README', 'skeleton'):
            units.append(base)
    return sorted(set(units))
