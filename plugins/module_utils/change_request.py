# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Change request format v1 (Form Permintaan Perubahan Sistem): load, validate, normalise.

Shared by the ``itsop.change.change_request_info`` module, the stage playbooks and the
``sopctl`` controller. The parts live in the private package ``_change_request``: ``schema``
(the embedded JSON Schema), ``validator`` (schema validation), ``messages`` (field paths),
``characters`` (identifiers and text) and ``timestamps`` (window and time zone); this module
adds the semantic rules JSON Schema cannot express, the defaults and the loader.

Every error is a string ``"<field path>: <reason>"``, for example
``"window.end: must be after window.start"`` or ``"items.packages[0].version: is required"``.

Public API::

    load_change_request(path) -> dict          # parse YAML/JSON; ChangeRequestError if unreadable
    validate_change_request(data) -> list[str] # [] when valid
    normalise_change_request(data) -> dict     # defaults applied, window in UTC; raises when invalid
    load_and_normalise(path) -> dict           # both, in one call
    ChangeRequestError                         # .errors is the list of messages
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import copy
import datetime
import hashlib
import json
import os

from ansible.module_utils.six.moves.collections_abc import Mapping

from ansible_collections.itsop.change.plugins.module_utils._change_request.characters import (
    bad_characters,
    character_errors,
)
from ansible_collections.itsop.change.plugins.module_utils._change_request.messages import (
    type_name,
    unique,
)
from ansible_collections.itsop.change.plugins.module_utils._change_request.timestamps import (
    DEFAULT_TIMEZONE,
    epoch,
    get_timezone,
    offset_disagreement,
    parse_timestamp,
    utc_iso,
)
from ansible_collections.itsop.change.plugins.module_utils._change_request.validator import schema_errors
from ansible_collections.itsop.change.plugins.module_utils._network import checks as net_checks
from ansible_collections.itsop.change.plugins.module_utils._network import intent
from ansible_collections.itsop.change.plugins.module_utils.safe_input import (
    InputError,
    decode_text,
    load_yaml,
    read_regular_file,
)
# kept importable from here for controller/sopctl/policy.py, which reads them as change_request.<name>
# pylint: disable=unused-import
from ansible_collections.itsop.change.plugins.module_utils._change_request.characters import (  # noqa: F401
    id_problem,
    text_problem,
)
from ansible_collections.itsop.change.plugins.module_utils._change_request.schema import (  # noqa: F401
    CHANGE_ID_PATTERN,
    PERSON_ID_PATTERN,
)
from ansible_collections.itsop.change.plugins.module_utils._change_request.validator import pattern_matches  # noqa: F401


#: largest change request file accepted (a real one is a few KB)
CHANGE_REQUEST_LIMIT = 256 * 1024
#: most values (scalars, lists, mappings) in a change request: the example has ~175; this bounds
#: the parse time of a hostile document within the size limit to a fraction of a second
CHANGE_REQUEST_MAX_VALUES = 5000


class ChangeRequestError(Exception):
    """The change request cannot be used. ``errors`` names every bad field and why."""

    def __init__(self, errors):
        if isinstance(errors, str):
            errors = [errors]
        self.errors = list(errors)
        super(ChangeRequestError, self).__init__('; '.join(self.errors))


# ---------------------------------------------------------------------------------------------
# loading

def load_change_request(path):
    """Parse a change request file (YAML or JSON) and return the raw mapping.

    Raises ChangeRequestError when the file cannot be read or is not a mapping. It does not
    validate; call validate_change_request() or normalise_change_request() for that. The file is
    read through ``safe_input``: a regular file of at most CHANGE_REQUEST_LIMIT bytes (a FIFO,
    a device or a directory is refused without reading), no YAML aliases, anchors or merge
    keys, no duplicate keys (the message names the key and both lines), bounded nesting.
    """
    what = 'change request'
    source = '%s %s' % (what, path)
    try:
        raw = read_regular_file(path, limit=CHANGE_REQUEST_LIMIT, what=what)
        data = load_yaml(decode_text(raw, source), source, max_nodes=CHANGE_REQUEST_MAX_VALUES)
    except InputError as exc:
        raise ChangeRequestError(str(exc)) from None
    if not isinstance(data, dict):
        raise ChangeRequestError('%s: the change request must be a mapping, found %s'
                                 % (source, type(data).__name__))
    return plain(data)


def plain(value):
    """Deep copy with YAML timestamps/dates turned back into ISO-8601 strings."""
    if isinstance(value, dict):
        return dict((k, plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value


def load_and_normalise(path):
    """Load, validate and normalise a change request file; raises ChangeRequestError."""
    return normalise_change_request(load_change_request(path))


def _semantic_errors(data):
    errors = []
    window = data.get('window') if isinstance(data.get('window'), dict) else {}
    tz_name = window.get('timezone', DEFAULT_TIMEZONE)
    tz_ok = True
    if isinstance(tz_name, str):
        try:
            get_timezone(tz_name)
        except ValueError as exc:
            tz_ok = False
            errors.append('window.timezone: %s' % exc)
    start = end = None
    if tz_ok and isinstance(tz_name, str):
        for key in ('start', 'end'):
            if isinstance(window.get(key), str) and not bad_characters(window[key], False):
                try:
                    parsed = parse_timestamp(window[key], tz_name)
                    disagreement = offset_disagreement(window[key], tz_name, 'window.timezone')
                except ValueError as exc:
                    errors.append('window.%s: not a valid timestamp (%s)' % (key, exc))
                    continue
                if disagreement:
                    errors.append('window.%s: %s; write the time in window.timezone or without an offset'
                                  % (key, disagreement))
                    continue
                if key == 'start':
                    start = parsed
                else:
                    end = parsed
    if start is not None and end is not None:
        if end <= start:
            errors.append('window.end: must be after window.start')
        else:
            minutes = (end - start).total_seconds() / 60.0
            downtime = data.get('expected_downtime_minutes')
            if isinstance(downtime, (int, float)) and not isinstance(downtime, bool) and downtime > minutes:
                errors.append('expected_downtime_minutes: %s exceeds the window length (%d minutes)'
                              % (downtime, int(minutes)))

    reason = data.get('reason') if isinstance(data.get('reason'), dict) else {}
    if reason.get('kind') == 'security_recommendation' and not reason.get('references'):
        errors.append('reason.references: a security_recommendation needs advisory or CVE references')

    targets = data.get('targets') if isinstance(data.get('targets'), dict) else {}
    staging = targets.get('staging') if isinstance(targets.get('staging'), list) else []
    production = targets.get('production') if isinstance(targets.get('production'), list) else []
    shared = sorted(set(str(x) for x in staging) & set(str(x) for x in production))
    if shared:
        errors.append('targets.staging: must not share targets with targets.production (%s)' % ', '.join(shared))

    items = data.get('items') if isinstance(data.get('items'), dict) else {}
    packages = items.get('packages') if isinstance(items.get('packages'), list) else []
    names = {}
    for index, pkg in enumerate(packages):
        if isinstance(pkg, dict) and isinstance(pkg.get('name'), str):
            if pkg['name'] in names:
                errors.append('items.packages[%d].name: %s is already listed at items.packages[%d]'
                              % (index, pkg['name'], names[pkg['name']]))
            else:
                names[pkg['name']] = index
    artifacts = items.get('artifacts') if isinstance(items.get('artifacts'), list) else []
    for index, art in enumerate(artifacts):
        if isinstance(art, dict) and art.get('install') and isinstance(art.get('name'), str):
            if not art['name'].endswith(('.deb', '.rpm')):
                errors.append('items.artifacts[%d].name: install: true needs a .deb or .rpm file, found %s'
                              % (index, art['name']))
    configs = items.get('config_files') if isinstance(items.get('config_files'), list) else []
    backup = data.get('backup') if isinstance(data.get('backup'), dict) else {}
    paths = [('items.config_files[%d].dest' % i, c.get('dest'), True) for i, c in enumerate(configs)
             if isinstance(c, dict)]
    paths += [('items.config_files[%d].template' % i, c.get('template'), False) for i, c in enumerate(configs)
              if isinstance(c, dict) and 'template' in c]
    paths += [('backup.paths[%d]' % i, p, True) for i, p in enumerate(backup.get('paths') or [])]
    for where, value, absolute in paths:
        problem = path_problem(value, absolute)
        if problem:
            errors.append('%s: %s' % (where, problem))
    network = items.get('network_config') if isinstance(items.get('network_config'), dict) else None
    server_items = [key for key in ('packages', 'artifacts', 'config_files') if items.get(key)]
    if isinstance(items, dict) and items and not server_items and network is None:
        errors.append('items: lists no package, artifact, config file or network configuration to change')
    if network is not None:
        errors.extend(intent.item_errors(network))
    if network is not None and server_items:
        errors.append('items.network_config: a network change changes network devices only; move %s to a '
                      'change request of its own' % ', '.join('items.' + key for key in server_items))
    test_plan = data.get('test_plan') if isinstance(data.get('test_plan'), dict) else {}
    if network is not None and 'network' not in test_plan:
        errors.append('test_plan.network: a network change needs state checks (%s) to confirm it and to '
                      'validate it' % ', '.join(net_checks.CHECK_TYPES))
    if isinstance(test_plan.get('network'), list) and test_plan['network']:
        # the checks' own rules (addresses, ranges, options of each type), as network_check applies them
        errors.extend('test_plan.network' + error[len('checks'):]
                      for error in net_checks.option_errors(test_plan['network']))
    if server_items and 'functional' not in test_plan:
        errors.append('test_plan.functional: a change of packages, artifacts or config files needs functional checks')

    approvers = data.get('approvers') if isinstance(data.get('approvers'), dict) else {}
    for role in ('it_manager', 'users', 'security', 'qa'):
        people = approvers.get(role)
        if isinstance(people, list) and not [p for p in people if isinstance(p, str) and p.strip()]:
            errors.append('approvers.%s: needs at least one approver' % role)
    return character_errors(data, []) + errors


def path_problem(value, absolute):
    """Why a path in a change request is not accepted, or None. What the approvers read must be
    where the file is: a canonical path (no empty, ``.`` or ``..`` component, no trailing ``/``);
    ``dest`` and backup paths absolute; a template relative to the change file's directory (an
    absolute template path could read any file of the controller, e.g. a private key, onto a host)."""
    if not isinstance(value, str) or not value:
        return None  # the schema names a missing or mistyped value
    if value.startswith('/') != absolute:  # an absolute one without its "/" is the schema's pattern error
        return None if absolute else \
            'must be a path relative to the change file\'s directory (an absolute template path is refused)'
    parts = value.split('/')[1:] if absolute else value.split('/')
    if value != '/' and any(part in ('', '.', '..') for part in parts):
        return ('%s is not a canonical path (no empty, "." or ".." component and no trailing "/"): '
                'what is approved must be where the file is' % json.dumps(value))
    return None


def validate_change_request(data, use_jsonschema=None):
    """Return every problem with a change request as "field.path: reason" strings ([] when valid)."""
    if not isinstance(data, dict):
        return ['(root): the change request must be a mapping, found %s' % type_name(data)]
    data = plain(data)
    semantic = _semantic_errors(data)
    # a semantic message says more than the schema's about the same field: keep only that one
    explained = set(msg.split(': ', 1)[0] for msg in semantic)
    errors = [msg for msg in schema_errors(data, use_jsonschema=use_jsonschema)
              if msg.split(': ', 1)[0] not in explained]
    return unique(errors + semantic)


# ---------------------------------------------------------------------------------------------
# normalisation

def _setdefault_path(data, keys, value):
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node.setdefault(keys[-1], copy.deepcopy(value))


DEFAULTS = (
    (('reason', 'references'), []),
    (('targets', 'staging'), []),
    (('items', 'packages'), []),
    (('items', 'artifacts'), []),
    (('items', 'config_files'), []),
    (('backup', 'exclude'), []),
    (('window', 'timezone'), DEFAULT_TIMEZONE),
    (('window', 'grace_minutes'), 0),
    (('expected_downtime_minutes',), None),
    (('dpia_required',), False),
    (('rollback', 'automatic'), True),
    (('execution', 'serial'), 1),
    (('execution', 'max_fail_percentage'), 0),
    (('execution', 'reboot_allowed'), False),
    (('test_plan', 'testinfra'), []),
    (('test_plan', 'security', 'declared_ports'), []),
    (('test_plan', 'security', 'declared_setuid'), []),
    (('test_plan', 'security', 'config_files'), []),
    (('monitoring', 'duration_seconds'), 60),
    (('monitoring', 'interval_seconds'), 5),
    (('monitoring', 'thresholds', 'availability_pct'), 99),
    (('monitoring', 'thresholds', 'p95_latency_ms'), 1000),
    (('monitoring', 'thresholds', 'max_restarts'), 0),
    (('monitoring', 'thresholds', 'max_journal_errors'), 5),
    (('monitoring', 'auto_rollback'), True),
)


DERIVED_WINDOW_KEYS = ('start_utc', 'end_utc', 'start_epoch', 'end_epoch', 'duration_minutes')


TEMPLATE_LIMIT = 1024 * 1024


def bind_templates(change, base_dir):
    """Give every config file template of a normalised change request its ``template_sha256``: the
    digest of the file (relative to ``base_dir``, the change file's directory) as read now. The digest
    is part of the request, so the approvals bind the template's content, an edit of the template
    counts as an edit of the request, and role ``update`` refuses a template that no longer has it.
    A ``template_sha256`` already present must match. Raises ChangeRequestError naming the item."""
    errors = []
    for index, item in enumerate((change.get('items') or {}).get('config_files') or []):
        if 'template' not in item or os.path.isabs(item['template']):
            continue
        where = 'items.config_files[%d].template' % index
        try:
            raw = read_regular_file(os.path.join(base_dir, item['template']), limit=TEMPLATE_LIMIT,
                                    what='template')
        except InputError as exc:
            errors.append('%s: %s' % (where, exc))
            continue
        digest = hashlib.sha256(raw).hexdigest()
        if item.get('template_sha256', digest) != digest:
            errors.append('%s: %s has sha256 %s, the request names %s (the template changed)'
                          % (where, item['template'], digest, item['template_sha256']))
        item['template_sha256'] = digest
    if errors:
        raise ChangeRequestError(errors)
    return change


def normalise_change_request(data, use_jsonschema=None):
    """Validate and return a normalised deep copy; raises ChangeRequestError naming every bad field.

    Defaults are filled in (see DEFAULTS); every package gets ``services`` (from ``service``);
    every artifact gets ``install`` (false); the window gains ``start_utc``/``end_utc``
    (``YYYY-MM-DDTHH:MM:SSZ``), ``start_epoch``/``end_epoch`` and ``duration_minutes``.
    """
    # normalising a normalised change request gives the same result: the derived window fields
    # are taken out before validation and must agree with what they are derived from
    derived = {}
    if isinstance(data, Mapping) and isinstance(data.get('window'), Mapping):
        data = dict(data)
        data['window'] = dict(data['window'])
        for key in DERIVED_WINDOW_KEYS:
            if key in data['window']:
                derived[key] = data['window'].pop(key)
    errors = validate_change_request(data, use_jsonschema=use_jsonschema)
    if errors:
        raise ChangeRequestError(errors)
    out = plain(data)
    for keys, value in DEFAULTS:
        _setdefault_path(out, keys, value)
    for pkg in out['items']['packages']:
        services = list(pkg.get('services') or [])
        if pkg.get('service') and pkg['service'] not in services:
            services.insert(0, pkg['service'])
        pkg['services'] = services
    for art in out['items']['artifacts']:
        art.setdefault('install', False)
    window = out['window']
    start = parse_timestamp(window['start'], window['timezone'])
    end = parse_timestamp(window['end'], window['timezone'])
    window['start_utc'] = utc_iso(start)
    window['end_utc'] = utc_iso(end)
    window['start_epoch'] = int(epoch(start))
    window['end_epoch'] = int(epoch(end))
    window['duration_minutes'] = int((end - start).total_seconds() // 60)
    wrong = ['window.%s: %r does not match window.start/end/timezone (derived value %r)' % (key, value, window[key])
             for key, value in sorted(derived.items()) if value != window[key]]
    if wrong:
        raise ChangeRequestError(wrong)
    return out
