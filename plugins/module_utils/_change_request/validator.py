# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Schema validation of a change request, with ``jsonschema`` or a small built-in validator.

Validation uses ``jsonschema`` (Draft 2020-12) when it can be imported, and otherwise a small
built-in validator for the subset of JSON Schema the schema uses. Both give the same messages
for the common cases, and both match ``pattern`` with ECMA-262 semantics (:func:`pattern_matches`).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import re

try:
    import jsonschema  # optional; the built-in validator is used without it
    HAS_JSONSCHEMA = True
except ImportError:  # pragma: no cover - depends on the environment
    jsonschema = None
    HAS_JSONSCHEMA = False

from ansible_collections.itsop.change.plugins.module_utils._change_request.messages import (
    format_path,
    is_type,
    join_path,
    short,
    type_name,
    unique,
)
from ansible_collections.itsop.change.plugins.module_utils._change_request.schema import SCHEMA


def _resolve(ref):
    if not ref.startswith('#/'):
        raise ValueError('only local $ref supported: %s' % ref)
    node = SCHEMA
    for part in ref[2:].split('/'):
        node = node[part]
    return node


def _builtin_errors(value, schema, path):
    """Yield (path list, message) for value against schema."""
    if '$ref' in schema:
        yield from _builtin_errors(value, _resolve(schema['$ref']), path)
    if 'const' in schema and value != schema['const']:
        yield path, 'must be %s' % short(schema['const'])
        return
    if 'enum' in schema and value not in schema['enum']:
        yield path, '%s is not one of %s' % (short(value), ', '.join(short(v) for v in schema['enum']))
        return
    if 'type' in schema and not is_type(value, schema['type']):
        yield path, 'must be of type %s, found %s' % (schema['type'], type_name(value))
        return
    if isinstance(value, str):
        if 'minLength' in schema and len(value) < schema['minLength']:
            yield path, 'must not be shorter than %d characters' % schema['minLength']
        if 'maxLength' in schema and len(value) > schema['maxLength']:
            yield path, 'must not be longer than %d characters' % schema['maxLength']
        if 'pattern' in schema and not pattern_matches(schema['pattern'], value):
            yield path, '%s does not match %s' % (short(value), schema['pattern'])
    if type_name(value) in ('integer', 'number'):
        if 'minimum' in schema and value < schema['minimum']:
            yield path, 'must be at least %s' % schema['minimum']
        if 'maximum' in schema and value > schema['maximum']:
            yield path, 'must be at most %s' % schema['maximum']
    if isinstance(value, list):
        if 'minItems' in schema and len(value) < schema['minItems']:
            yield path, 'must have at least %d item(s)' % schema['minItems']
        if schema.get('uniqueItems'):
            seen = []
            for item in value:
                if item in seen:
                    yield path, 'has duplicate item %s' % short(item)
                    break
                seen.append(item)
        if 'items' in schema:
            for index, item in enumerate(value):
                yield from _builtin_errors(item, schema['items'], join_path(path, index))
    if isinstance(value, dict):
        for name in schema.get('required', []):
            if name not in value:
                yield join_path(path, name), 'is required'
        if 'minProperties' in schema and len(value) < schema['minProperties']:
            yield path, 'must have at least %d field(s)' % schema['minProperties']
        props = schema.get('properties', {})
        for name in sorted(value, key=str):
            if name in props:
                yield from _builtin_errors(value[name], props[name], join_path(path, name))
            elif schema.get('additionalProperties') is False:
                yield join_path(path, name), 'unknown field'
    for sub in schema.get('allOf', []):
        yield from _builtin_errors(value, sub, path)
    if 'if' in schema:
        if not list(_builtin_errors(value, schema['if'], path)):
            if 'then' in schema:
                yield from _builtin_errors(value, schema['then'], path)
        elif 'else' in schema:
            yield from _builtin_errors(value, schema['else'], path)
    if 'oneOf' in schema:
        matches = [sub for sub in schema['oneOf'] if not list(_builtin_errors(value, sub, path))]
        if len(matches) != 1:
            yield path, _one_of_message(schema['oneOf'], len(matches))


def _one_of_message(subschemas, matched):
    required = [s['required'][0] for s in subschemas if list(s) == ['required'] and len(s['required']) == 1]
    if len(required) == len(subschemas):
        return 'needs exactly one of %s' % ', '.join(required)
    if matched == 0:
        return 'matches none of the allowed forms'
    return 'matches more than one of the allowed forms'


# JSON Schema patterns are ECMA-262 regular expressions: without the multiline flag ``$`` matches
# only at the very end of the string. Python's ``$`` also matches before a final newline, so
# ``re.search('^[a-z]+$', 'budi\\n')`` succeeds (jsonschema uses re.search). Both validators use
# pattern_matches(), which gives ``$`` its ECMA meaning.
_PATTERNS = {}


def _compile_pattern(pattern):
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        python = pattern
        if python.endswith('$') and not python.endswith('\\$'):
            python = python[:-1] + '\\Z'
        compiled = _PATTERNS[pattern] = re.compile(python)
    return compiled


def pattern_matches(pattern, value):
    """True when the JSON Schema ``pattern`` matches ``value`` with ECMA-262 semantics."""
    return isinstance(value, str) and _compile_pattern(pattern).search(value) is not None


_VALIDATOR_CLASS = []


def _validator_class():
    """The schema's jsonschema validator class with an ECMA-262 ``pattern`` (see pattern_matches)."""
    if not _VALIDATOR_CLASS:
        base = jsonschema.validators.validator_for(SCHEMA)

        def pattern(validator, patrn, instance, schema):
            if validator.is_type(instance, 'string') and not pattern_matches(patrn, instance):
                yield jsonschema.ValidationError('%r does not match %r' % (instance, patrn))

        _VALIDATOR_CLASS.append(jsonschema.validators.extend(base, {'pattern': pattern}))
    return _VALIDATOR_CLASS[0]


def _jsonschema_errors(data):
    validator_cls = _validator_class()
    validator = validator_cls(SCHEMA)
    out = []
    for error in validator.iter_errors(data):
        out.extend(_flatten_jsonschema_error(error))
    return out


def _flatten_jsonschema_error(error):
    path = list(error.absolute_path)
    kind = error.validator
    if kind == 'required':
        match = re.match(r"^'(.+)' is a required property$", error.message)
        name = match.group(1) if match else str(error.message)
        return [(join_path(path, name), 'is required')]
    if kind == 'additionalProperties':
        props = error.schema.get('properties', {})
        unknown = sorted((k for k in error.instance if k not in props), key=str)
        return [(join_path(path, name), 'unknown field') for name in unknown]
    if kind == 'type':
        return [(path, 'must be of type %s, found %s' % (error.validator_value, type_name(error.instance)))]
    if kind == 'enum':
        allowed = ', '.join(short(v) for v in error.validator_value)
        return [(path, '%s is not one of %s' % (short(error.instance), allowed))]
    if kind == 'const':
        return [(path, 'must be %s' % short(error.validator_value))]
    if kind == 'pattern':
        return [(path, '%s does not match %s' % (short(error.instance), error.validator_value))]
    if kind == 'minLength':
        return [(path, 'must not be shorter than %d characters' % error.validator_value)]
    if kind == 'maxLength':
        return [(path, 'must not be longer than %d characters' % error.validator_value)]
    if kind == 'minimum':
        return [(path, 'must be at least %s' % error.validator_value)]
    if kind == 'maximum':
        return [(path, 'must be at most %s' % error.validator_value)]
    if kind == 'minItems':
        return [(path, 'must have at least %d item(s)' % error.validator_value)]
    if kind == 'minProperties':
        return [(path, 'must have at least %d field(s)' % error.validator_value)]
    if kind == 'uniqueItems':
        seen = []
        dup = None
        for item in error.instance:
            if item in seen:
                dup = item
                break
            seen.append(item)
        return [(path, 'has duplicate item %s' % short(dup))]
    if kind == 'oneOf':
        matched = 0
        for sub in error.validator_value:
            if _validator_class()(sub).is_valid(error.instance):
                matched += 1
        return [(path, _one_of_message(error.validator_value, matched))]
    return [(path, error.message)]


def schema_errors(data, use_jsonschema=None):
    """Schema errors only, as sorted unique "path: reason" strings."""
    if use_jsonschema is None:
        use_jsonschema = HAS_JSONSCHEMA
    if use_jsonschema:
        pairs = _jsonschema_errors(data)
    else:
        pairs = list(_builtin_errors(data, SCHEMA, []))
    return sorted(unique(['%s: %s' % (format_path(p), m) for p, m in pairs]))
