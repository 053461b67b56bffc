# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Compare a security baseline snapshot with the state after a change (SOP step 4.2).

Pure functions, standard library only, so the same code runs inside the
``security_baseline_info`` module on a managed host and in unit tests.

A snapshot is the dict ``security_baseline_info`` returns as ``snapshot``; the keys used here are
``listening`` (list of ``{proto, address, port, process}``), ``services_enabled`` (list of unit
names), ``setuid_files`` (list of ``{path, mode, owner, group, setuid, setgid}``),
``world_writable`` (list of ``{path, mode, type}``), ``uid0_accounts`` (list of names),
``sudoers`` (``{digest, entries}``), ``sshd`` (``{present, config}``) and ``files``
(``{path: {exists, mode, owner, group, sha256}}``).

Every finding is a dict ``{id, category, severity, title, detail, subject, blocking}``.
``blocking`` is true when the severity reaches the gate threshold; the gate passes when no
finding blocks.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

SEVERITIES = ('info', 'low', 'medium', 'high', 'critical')
RULE_CHECKS = ('forbidden_ports', 'forbidden_services', 'uid0_accounts', 'file_mode',
               'config_files_mode', 'no_world_writable', 'sshd_option', 'sudoers_forbidden',
               'setuid_allowed', 'config_required', 'config_forbidden')
# Rules on a network device's configuration text (snapshot key ``config``); the other rules are
# about a server's state and are not evaluated on network devices, nor these on servers.
NETWORK_RULE_CHECKS = ('config_required', 'config_forbidden')


def network_rules(rules):
    """The rules of a standard that apply to network devices."""
    return [r for r in rules or [] if isinstance(r, dict) and r.get('check') in NETWORK_RULE_CHECKS]


def server_rules(rules):
    """The rules of a standard that apply to servers."""
    return [r for r in rules or [] if not (isinstance(r, dict) and r.get('check') in NETWORK_RULE_CHECKS)]


class CompareError(ValueError):
    """Raised for malformed input (bad declared port, bad rule)."""


def severity_rank(severity):
    if severity not in SEVERITIES:
        raise CompareError('unknown severity %r (expected one of %s)' % (severity, ', '.join(SEVERITIES)))
    return SEVERITIES.index(severity)


def parse_declared_port(value):
    """Return ``(proto, port)`` from ``8080``, ``"8080"``, ``"8080/tcp"`` or ``{port, proto}``."""
    proto = 'tcp'
    if isinstance(value, dict):
        port = value.get('port')
        proto = str(value.get('proto', 'tcp')).lower()
    elif isinstance(value, int) and not isinstance(value, bool):
        port = value
    else:
        text = str(value).strip().lower()
        match = re.match(r'^(\d+)(?:/(tcp|udp)6?)?$', text)
        if not match:
            raise CompareError('declared port %r is not PORT or PORT/tcp or PORT/udp' % (value,))
        port = int(match.group(1))
        proto = match.group(2) or 'tcp'
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise CompareError('declared port %r has no valid port number' % (value,)) from None
    if not 0 < port < 65536:
        raise CompareError('declared port %r is outside 1-65535' % (value,))
    if proto not in ('tcp', 'udp'):
        raise CompareError('declared port %r has protocol %r (tcp or udp)' % (value, proto))
    return proto, port


def _proto(entry):
    return str(entry.get('proto', 'tcp')).lower().rstrip('6')


def _ports(snapshot):
    """``{(proto, port): [entries]}`` of listening sockets (IPv4 and IPv6 merged)."""
    out = {}
    for entry in snapshot.get('listening') or []:
        out.setdefault((_proto(entry), int(entry['port'])), []).append(entry)
    return out


def _mode(value):
    if value is None:
        return None
    if isinstance(value, int):
        return value
    return int(str(value), 8)


def _fmt_mode(value):
    return None if value is None else '%04o' % value


def _describe_port(key, entries):
    procs = sorted(set('%s' % (e.get('process') or '?') for e in entries))
    addrs = sorted(set('%s' % (e.get('address') or '?') for e in entries))
    return '%s/%s on %s (process %s)' % (key[1], key[0], ', '.join(addrs), ', '.join(procs))


class _Collector(object):
    def __init__(self, threshold):
        self.threshold = severity_rank(threshold)
        self.findings = []

    def add(self, fid, category, severity, title, subject, detail=None):
        self.findings.append(dict(
            id=fid, category=category, severity=severity, title=title, subject=subject,
            detail=detail or {}, blocking=severity_rank(severity) >= self.threshold,
        ))


def compare(baseline, after, declared_ports=None, declared_setuid=None, config_files=None,
            rules=None, fail_on_severity='high'):
    """Compare ``after`` with ``baseline`` and evaluate ``rules``; return the result dict.

    ``baseline`` may be ``None``: then only the configuration-standard rules are evaluated and
    the result says ``baseline_compared: false``.
    """
    declared = set(parse_declared_port(p) for p in (declared_ports or []))
    declared_suid = set(str(p) for p in (declared_setuid or []))
    config_files = [str(p) for p in (config_files or [])]
    col = _Collector(fail_on_severity)

    if baseline is not None:
        _compare_ports(col, baseline, after, declared)
        _compare_services(col, baseline, after)
        _compare_setuid(col, baseline, after, declared_suid)
        _compare_world_writable(col, baseline, after)
        _compare_uid0(col, baseline, after)
        _compare_sudoers(col, baseline, after)
        _compare_sshd(col, baseline, after)
        _compare_files(col, baseline, after, config_files)
    for rule in rules or []:
        evaluate_rule(col, rule, after, config_files)

    counts = dict((s, 0) for s in SEVERITIES)
    for finding in col.findings:
        counts[finding['severity']] += 1
    blocking = [f for f in col.findings if f['blocking']]
    return dict(
        passed=not blocking,
        baseline_compared=baseline is not None,
        fail_on_severity=fail_on_severity,
        findings=col.findings,
        blocking=[f['id'] + ': ' + f['title'] for f in blocking],
        counts=counts,
    )


def _compare_ports(col, baseline, after, declared):
    before = _ports(baseline)
    now = _ports(after)
    for key in sorted(set(now) - set(before)):
        desc = _describe_port(key, now[key])
        detail = dict(proto=key[0], port=key[1], listeners=now[key])
        if key in declared:
            col.add('new-port-declared', 'ports', 'info',
                    'declared new listening port %s' % desc, '%s/%s' % (key[1], key[0]), detail)
        else:
            col.add('new-listening-port', 'ports', 'high',
                    'new listening port %s not declared in test_plan.security.declared_ports' % desc,
                    '%s/%s' % (key[1], key[0]), detail)
    for key in sorted(set(before) - set(now)):
        col.add('port-closed', 'ports', 'info', 'listening port %s/%s closed' % (key[1], key[0]),
                '%s/%s' % (key[1], key[0]), dict(proto=key[0], port=key[1]))


def _compare_services(col, baseline, after):
    before = set(baseline.get('services_enabled') or [])
    now = set(after.get('services_enabled') or [])
    for unit in sorted(now - before):
        col.add('service-enabled', 'services', 'medium', 'unit %s newly enabled' % unit, unit)
    for unit in sorted(before - now):
        col.add('service-disabled', 'services', 'low', 'unit %s no longer enabled' % unit, unit)


def _compare_setuid(col, baseline, after, declared):
    before = dict((e['path'], e) for e in baseline.get('setuid_files') or [])
    now = dict((e['path'], e) for e in after.get('setuid_files') or [])
    for path in sorted(set(now) - set(before)):
        entry = now[path]
        kind = '/'.join(k for k in ('setuid', 'setgid') if entry.get(k)) or 'setuid'
        if path in declared:
            col.add('new-setuid-declared', 'setuid', 'info', 'declared new %s file %s' % (kind, path),
                    path, entry)
        else:
            col.add('new-setuid-file', 'setuid', 'high',
                    'new %s file %s (mode %s, owner %s) not declared in test_plan.security.declared_setuid'
                    % (kind, path, entry.get('mode'), entry.get('owner')), path, entry)
    for path in sorted(set(now) & set(before)):
        old, new = before[path], now[path]
        attrs = ('mode', 'owner', 'group')
        if [old.get(a) for a in attrs] != [new.get(a) for a in attrs]:
            col.add('setuid-changed', 'setuid', 'medium',
                    'setuid/setgid file %s changed from %s %s:%s to %s %s:%s' % (
                        path, old.get('mode'), old.get('owner'), old.get('group'),
                        new.get('mode'), new.get('owner'), new.get('group')), path,
                    dict(before=old, after=new))
    for path in sorted(set(before) - set(now)):
        col.add('setuid-removed', 'setuid', 'info', 'setuid/setgid file %s removed or no longer privileged' % path,
                path)


def _compare_world_writable(col, baseline, after):
    before = set(e['path'] for e in baseline.get('world_writable') or [])
    for entry in after.get('world_writable') or []:
        if entry['path'] not in before:
            title = 'new world-writable %s %s (mode %s)' % (entry.get('type', 'file'), entry['path'], entry.get('mode'))
            col.add('new-world-writable', 'world_writable', 'high', title, entry['path'], entry)


def _compare_uid0(col, baseline, after):
    before = set(baseline.get('uid0_accounts') or [])
    for name in sorted(set(after.get('uid0_accounts') or []) - before):
        col.add('new-uid0-account', 'accounts', 'critical', 'new account with uid 0: %s' % name, name)


def _compare_sudoers(col, baseline, after):
    old = baseline.get('sudoers') or {}
    new = after.get('sudoers') or {}
    if old.get('digest') == new.get('digest'):
        return
    old_entries = set(old.get('entries') or [])
    new_entries = set(new.get('entries') or [])
    added = sorted(new_entries - old_entries)
    removed = sorted(old_entries - new_entries)
    severity = 'high' if added else 'low'
    col.add('sudoers-changed', 'sudoers', severity,
            'sudoers changed (%d entries added, %d removed)' % (len(added), len(removed)), 'sudoers',
            dict(added=added, removed=removed, digest_before=old.get('digest'), digest_after=new.get('digest')))


def _compare_sshd(col, baseline, after):
    old = baseline.get('sshd') or {}
    new = after.get('sshd') or {}
    if not old.get('present') and not new.get('present'):
        return
    if old.get('present') != new.get('present'):
        col.add('sshd-presence-changed', 'sshd', 'medium',
                'sshd %s' % ('appeared' if new.get('present') else 'disappeared'), 'sshd')
        return
    old_cfg = old.get('config') or {}
    new_cfg = new.get('config') or {}
    for key in sorted(set(old_cfg) | set(new_cfg)):
        if old_cfg.get(key) != new_cfg.get(key):
            col.add('sshd-config-changed', 'sshd', 'medium',
                    'sshd effective setting %s changed from %r to %r' % (key, old_cfg.get(key), new_cfg.get(key)),
                    key, dict(before=old_cfg.get(key), after=new_cfg.get(key)))


def _compare_files(col, baseline, after, config_files):
    old_files = baseline.get('files') or {}
    new_files = after.get('files') or {}
    for path in config_files:
        old = old_files.get(path)
        new = new_files.get(path)
        if new is None:
            continue
        if not new.get('exists'):
            if old and old.get('exists'):
                col.add('config-file-removed', 'config_files', 'medium', 'config file %s was removed' % path, path)
            continue
        mode = _mode(new.get('mode'))
        if mode is not None and mode & 0o002:
            col.add('config-file-world-writable', 'config_files', 'high',
                    'config file %s is world-writable (mode %s)' % (path, new.get('mode')), path, new)
        if not old or not old.get('exists'):
            title = 'config file %s is new (mode %s, %s:%s)' % (
                path, new.get('mode'), new.get('owner'), new.get('group'))
            col.add('config-file-added', 'config_files', 'info', title, path, new)
            continue
        for attr in ('mode', 'owner', 'group'):
            if old.get(attr) != new.get(attr):
                col.add('config-file-%s-changed' % attr, 'config_files', 'medium',
                        'config file %s %s changed from %s to %s' % (path, attr, old.get(attr), new.get(attr)),
                        path, dict(before=old.get(attr), after=new.get(attr)))
        if old.get('sha256') != new.get('sha256'):
            col.add('config-file-content-changed', 'config_files', 'info',
                    'config file %s content changed' % path, path,
                    dict(sha256_before=old.get('sha256'), sha256_after=new.get('sha256')))


def validate_rules(rules):
    """Return a list of error strings for malformed configuration-standard rules."""
    errors = []
    seen = set()
    for index, rule in enumerate(rules or []):
        where = 'rules[%d]' % index
        if not isinstance(rule, dict):
            errors.append('%s is not a mapping' % where)
            continue
        rid = rule.get('id')
        if not rid:
            errors.append('%s has no id' % where)
        elif rid in seen:
            errors.append('%s: duplicate id %s' % (where, rid))
        seen.add(rid)
        if rule.get('check') not in RULE_CHECKS:
            errors.append('%s (%s): check %r is not one of %s' % (where, rid, rule.get('check'),
                                                                  ', '.join(RULE_CHECKS)))
        if rule.get('severity', 'medium') not in SEVERITIES:
            errors.append('%s (%s): severity %r is not one of %s' % (where, rid, rule.get('severity'),
                                                                     ', '.join(SEVERITIES)))
        check = rule.get('check')
        if check == 'forbidden_ports':
            try:
                [parse_declared_port(p) for p in rule.get('ports') or []]
            except CompareError as exc:
                errors.append('%s (%s): %s' % (where, rid, exc))
        if check == 'file_mode' and not rule.get('path'):
            errors.append('%s (%s): file_mode needs path' % (where, rid))
        if check in ('file_mode', 'config_files_mode') and rule.get('max_mode') is not None:
            try:
                _mode(rule.get('max_mode'))
            except ValueError:
                errors.append('%s (%s): max_mode %r is not octal' % (where, rid, rule.get('max_mode')))
        if check == 'sshd_option' and (not rule.get('key') or not isinstance(rule.get('allowed'), list)):
            errors.append('%s (%s): sshd_option needs key and an allowed list' % (where, rid))
        if check in NETWORK_RULE_CHECKS:
            patterns = rule.get('patterns')
            if not isinstance(patterns, list) or not patterns:
                errors.append('%s (%s): %s needs patterns (a list of regular expressions)' % (where, rid, check))
            for pattern in patterns if isinstance(patterns, list) else []:
                try:
                    re.compile(pattern)
                except (re.error, TypeError) as exc:
                    errors.append('%s (%s): pattern %r does not compile: %s' % (where, rid, pattern, exc))
        if check == 'sudoers_forbidden':
            try:
                re.compile(rule.get('pattern') or '')
            except re.error as exc:
                errors.append('%s (%s): pattern does not compile: %s' % (where, rid, exc))
            if not rule.get('pattern'):
                errors.append('%s (%s): sudoers_forbidden needs pattern' % (where, rid))
    return errors


def rule_paths(rules):
    """Paths the ``file_mode`` rules need in the snapshot's ``files``."""
    return [r['path'] for r in rules or [] if isinstance(r, dict) and r.get('check') == 'file_mode' and r.get('path')]


def _check_file(col, rule, path, info):
    sev = rule.get('severity', 'medium')
    title = rule.get('title') or rule['id']
    if info is None or not info.get('exists'):
        if rule.get('required', False):
            col.add(rule['id'], 'standard', sev, '%s: %s is missing' % (title, path), path)
        return
    max_mode = _mode(rule.get('max_mode'))
    mode = _mode(info.get('mode'))
    if max_mode is not None and mode is not None and mode & ~max_mode & 0o7777:
        col.add(rule['id'], 'standard', sev,
                '%s: %s has mode %s, allowed at most %s' % (title, path, info.get('mode'), _fmt_mode(max_mode)),
                path, dict(mode=info.get('mode'), max_mode=_fmt_mode(max_mode)))
    for attr in ('owner', 'group'):
        allowed = rule.get(attr)
        if allowed is None:
            continue
        allowed = allowed if isinstance(allowed, list) else [allowed]
        if info.get(attr) not in allowed:
            col.add(rule['id'], 'standard', sev,
                    '%s: %s %s is %s, expected %s' % (title, path, attr, info.get(attr), ' or '.join(allowed)),
                    path, {attr: info.get(attr), 'expected': allowed})


def evaluate_rule(col, rule, after, config_files):
    """Evaluate one configuration-standard rule against the snapshot ``after``."""
    check = rule.get('check')
    sev = rule.get('severity', 'medium')
    title = rule.get('title') or rule.get('id')
    rid = rule.get('id')
    if check == 'forbidden_ports':
        forbidden = set(parse_declared_port(p) for p in rule.get('ports') or [])
        now = _ports(after)
        for key in sorted(forbidden & set(now)):
            col.add(rid, 'standard', sev, '%s: %s' % (title, _describe_port(key, now[key])),
                    '%s/%s' % (key[1], key[0]))
    elif check == 'forbidden_services':
        enabled = set(after.get('services_enabled') or [])
        for unit in rule.get('services') or []:
            if unit in enabled:
                col.add(rid, 'standard', sev, '%s: %s is enabled' % (title, unit), unit)
    elif check == 'uid0_accounts':
        allowed = set(rule.get('allowed') or ['root'])
        for name in sorted(set(after.get('uid0_accounts') or []) - allowed):
            col.add(rid, 'standard', sev, '%s: account %s has uid 0' % (title, name), name)
    elif check == 'file_mode':
        _check_file(col, rule, rule['path'], (after.get('files') or {}).get(rule['path']))
    elif check == 'config_files_mode':
        for path in config_files:
            _check_file(col, rule, path, (after.get('files') or {}).get(path))
    elif check == 'no_world_writable':
        for entry in after.get('world_writable') or []:
            col.add(rid, 'standard', sev,
                    '%s: %s is world-writable (mode %s)' % (title, entry['path'], entry.get('mode')), entry['path'])
    elif check == 'sshd_option':
        sshd = after.get('sshd') or {}
        if not sshd.get('present'):
            return
        key = str(rule['key']).lower()
        value = (sshd.get('config') or {}).get(key)
        allowed = [str(v).lower() for v in rule['allowed']]
        if value is None or str(value).lower() not in allowed:
            col.add(rid, 'standard', sev, '%s: sshd %s is %r, allowed %s' % (title, key, value, ', '.join(allowed)),
                    key, dict(value=value, allowed=allowed))
    elif check == 'sudoers_forbidden':
        pattern = re.compile(rule['pattern'])
        for entry in (after.get('sudoers') or {}).get('entries') or []:
            if pattern.search(entry):
                col.add(rid, 'standard', sev, '%s: sudoers entry %r' % (title, entry), entry)
    elif check == 'setuid_allowed':
        allowed = set(rule.get('paths') or [])
        for entry in after.get('setuid_files') or []:
            if entry['path'] not in allowed:
                col.add(rid, 'standard', sev,
                        '%s: %s is setuid/setgid and not on the allowed list' % (title, entry['path']), entry['path'])
    elif check in NETWORK_RULE_CHECKS:
        if 'config' not in after:
            return  # a server: the rule is about network device configuration
        lines = (after.get('config') or '').splitlines()
        for pattern in rule.get('patterns') or []:
            regex = re.compile(pattern)
            matching = [line for line in lines if regex.search(line)]
            if check == 'config_required' and not matching:
                col.add(rid, 'standard', sev, '%s: no configuration line matches %s' % (title, pattern), pattern)
            if check == 'config_forbidden':
                for line in matching:
                    col.add(rid, 'standard', sev, '%s: forbidden line %r' % (title, line.strip()), line.strip())
    else:
        raise CompareError('rule %s: unknown check %r' % (rid, check))
