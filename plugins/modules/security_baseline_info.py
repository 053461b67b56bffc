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
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; it does the same in check mode.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
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

import grp  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import socket  # noqa: E402
import stat  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils.security_compare import (  # noqa: E402
    CompareError,
    compare,
    parse_declared_port,
    validate_rules,
)

_TCP_LISTEN = '0A'
_UDP_UNCONN = '07'


def _hex_addr(text, v6):
    raw = bytes.fromhex(text)
    if v6:
        # four little-endian 32-bit words
        raw = b''.join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
        return socket.inet_ntop(socket.AF_INET6, raw)
    return socket.inet_ntop(socket.AF_INET, raw[::-1])


def _socket_owners():
    owners = {}
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        fd_dir = '/proc/%s/fd' % pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith('socket:['):
                inode = target[8:-1]
                if inode not in owners:
                    try:
                        with open('/proc/%s/comm' % pid) as fh:
                            comm = fh.read().strip()
                    except OSError:
                        comm = None
                    owners[inode] = (int(pid), comm)
    return owners


def listening_sockets():
    owners = _socket_owners()
    out = []
    for proto in ('tcp', 'tcp6', 'udp', 'udp6'):
        path = '/proc/net/%s' % proto
        try:
            with open(path) as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            state = parts[3]
            if proto.startswith('tcp') and state != _TCP_LISTEN:
                continue
            if proto.startswith('udp') and state != _UDP_UNCONN:
                continue
            addr, port = parts[1].split(':')
            pid, comm = owners.get(parts[9], (None, None))
            out.append(dict(proto=proto.rstrip('6'), family='ipv6' if proto.endswith('6') else 'ipv4',
                            address=_hex_addr(addr, proto.endswith('6')), port=int(port, 16),
                            process=comm, pid=pid))
    out.sort(key=lambda e: (e['proto'], e['port'], e['address']))
    return out


def enabled_units(module):
    systemctl = module.get_bin_path('systemctl')
    if not systemctl:
        return None
    rc, out, err = module.run_command([systemctl, 'list-unit-files', '--state=enabled',
                                       '--type=service,socket,timer', '--no-legend', '--no-pager'])
    if rc != 0:
        module.fail_json(msg='systemctl list-unit-files failed (rc=%d): %s' % (rc, err.strip()))
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())


def _name(getter, ident):
    try:
        return getter(ident)[0]
    except KeyError:
        return str(ident)


def _walk(roots, excludes):
    """Yield (path, lstat) for files and directories under roots, staying on each root's device."""
    seen = set()
    for root in roots:
        try:
            root_st = os.lstat(root)
        except OSError:
            continue
        if not stat.S_ISDIR(root_st.st_mode):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            if any(dirpath == ex or dirpath.startswith(ex.rstrip('/') + '/') for ex in excludes):
                dirnames[:] = []
                continue
            keep = []
            for name in dirnames:
                full = os.path.join(dirpath, name)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if st.st_dev == root_st.st_dev and not stat.S_ISLNK(st.st_mode):
                    keep.append(name)
                    if full not in seen:
                        seen.add(full)
                        yield full, st
            dirnames[:] = keep
            for name in filenames:
                full = os.path.join(dirpath, name)
                if full in seen:
                    continue
                seen.add(full)
                try:
                    yield full, os.lstat(full)
                except OSError:
                    continue


def _entry(path, st):
    return dict(path=path, mode='%04o' % stat.S_IMODE(st.st_mode), owner=_name(pwd.getpwuid, st.st_uid),
                group=_name(grp.getgrgid, st.st_gid))


def setuid_files(roots, excludes):
    out = []
    for path, st in _walk(roots, excludes):
        if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            entry = _entry(path, st)
            entry.update(setuid=bool(st.st_mode & stat.S_ISUID), setgid=bool(st.st_mode & stat.S_ISGID))
            out.append(entry)
    return sorted(out, key=lambda e: e['path'])


def world_writable(roots, excludes):
    out = []
    for path, st in _walk(roots, excludes):
        if stat.S_ISLNK(st.st_mode) or not st.st_mode & stat.S_IWOTH:
            continue
        if stat.S_ISDIR(st.st_mode):
            if st.st_mode & stat.S_ISVTX:
                continue
            kind = 'directory'
        elif stat.S_ISREG(st.st_mode):
            kind = 'file'
        else:
            continue
        entry = _entry(path, st)
        entry['type'] = kind
        out.append(entry)
    return sorted(out, key=lambda e: e['path'])


def uid0_accounts():
    names = []
    with open('/etc/passwd') as fh:
        for line in fh:
            parts = line.rstrip('\n').split(':')
            if len(parts) > 2 and parts[2].strip() == '0':
                names.append(parts[0])
    return sorted(names)


def sudoers():
    files = []
    if os.path.isfile('/etc/sudoers'):
        files.append('/etc/sudoers')
    if os.path.isdir('/etc/sudoers.d'):
        for name in sorted(os.listdir('/etc/sudoers.d')):
            # sudo skips names ending in ~ or containing a dot
            if name.endswith('~') or '.' in name:
                continue
            full = os.path.join('/etc/sudoers.d', name)
            if os.path.isfile(full):
                files.append(full)
    digest = hashlib.sha256()
    entries = []
    for path in files:
        with open(path, 'rb') as fh:
            data = fh.read()
        digest.update(path.encode() + b'\0' + data + b'\0')
        for line in data.decode('utf-8', 'replace').splitlines():
            text = ' '.join(line.split())
            if not text:
                continue
            if text.startswith('#') and not (text.startswith('#include') or text.startswith('#includedir')):
                continue
            entries.append(text)
    return dict(digest=digest.hexdigest(), entries=entries, files=files)


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


def file_info(path):
    try:
        st = os.stat(path)
    except OSError:
        return dict(exists=False)
    info = _entry(path, st)
    info.pop('path')
    info['exists'] = True
    info['type'] = 'directory' if stat.S_ISDIR(st.st_mode) else 'file'
    info['sha256'] = None
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256()
        with open(path, 'rb') as fh:
            for chunk in iter(lambda: fh.read(1024 * 1024), b''):
                digest.update(chunk)
        info['sha256'] = digest.hexdigest()
    return info


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

    errors = validate_rules(params['rules'])
    for index, port in enumerate(params['declared_ports']):
        try:
            parse_declared_port(port)
        except CompareError as exc:
            errors.append('declared_ports[%d]: %s' % (index, exc))
    if params['baseline'] is not None and not isinstance(params['baseline'].get('listening'), list):
        errors.append('baseline does not look like a snapshot of this module (no listening list)')
    if errors:
        module.fail_json(msg='invalid options: ' + '; '.join(errors))

    excludes = params['exclude_paths']
    paths = list(params['files'])
    for path in params['config_files'] + [r['path'] for r in params['rules'] if r.get('check') == 'file_mode']:
        if path not in paths:
            paths.append(path)
    try:
        snapshot = dict(
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
            files=dict((path, file_info(path)) for path in paths),
        )
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
