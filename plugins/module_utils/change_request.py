# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Change request format v1 (Form Permintaan Perubahan Sistem): load, validate, normalise.

Shared by the ``itsop.change.change_request_info`` module, the stage playbooks and the
``sopctl`` controller. The JSON Schema lives in ``schemas/change_request.v1.json``; an exact copy
is embedded below (``SCHEMA_JSON``) so the module works inside AnsiballZ, and a unit test keeps
the two identical.

Validation uses ``jsonschema`` (Draft 2020-12) when it can be imported, and otherwise a small
built-in validator for the subset of JSON Schema this schema uses. Both give the same messages
for the common cases. Semantic rules that JSON Schema cannot express are checked afterwards.

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
import json
import math
import re
import unicodedata

from ansible.module_utils.six.moves.collections_abc import Mapping

try:
    import jsonschema  # optional; the built-in validator is used without it
    HAS_JSONSCHEMA = True
except ImportError:  # pragma: no cover - depends on the environment
    jsonschema = None
    HAS_JSONSCHEMA = False

try:
    import zoneinfo  # Python 3.9+
    HAS_ZONEINFO = True
except ImportError:  # pragma: no cover - Python 3.8 targets
    zoneinfo = None
    HAS_ZONEINFO = False

from ansible_collections.itsop.change.plugins.module_utils.safe_input import (
    InputError,
    decode_text,
    load_yaml,
    read_regular_file,
)

API_VERSION = 'itsop.change/v1'
DEFAULT_TIMEZONE = 'Asia/Jakarta'

# Exact copy of schemas/change_request.v1.json (tests/unit/test_change_request.py keeps them equal).
SCHEMA_JSON = r'''{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://itsop.example/schemas/change_request.v1.json",
  "title": "itsop.change change request v1 (Form Permintaan Perubahan Sistem)",
  "description": "Change request for SOP stages 1-6; semantic rules in module_utils/change_request.py",
  "type": "object",
  "additionalProperties": false,
  "required": ["api_version", "id", "title", "type", "reason", "requester", "description", "targets",
               "items", "backup", "window", "risk", "rollback", "test_plan", "approvers"],
  "properties": {
    "api_version": {"const": "itsop.change/v1"},
    "id": {"type": "string", "pattern": "^CHG-[0-9]{4}-[0-9]{4,}$"},
    "title": {"type": "string", "minLength": 3, "maxLength": 200},
    "type": {"enum": ["install", "update", "patch", "security_patch"]},
    "reason": {
      "type": "object",
      "additionalProperties": false,
      "required": ["kind"],
      "properties": {
        "kind": {"enum": ["business_request", "security_recommendation"]},
        "references": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": true},
        "details": {"type": "string"}
      },
      "if": {"properties": {"kind": {"const": "security_recommendation"}}},
      "then": {"required": ["references"], "properties": {"references": {"minItems": 1}}}
    },
    "requester": {"$ref": "#/$defs/person"},
    "description": {"type": "string", "minLength": 1},
    "targets": {
      "type": "object",
      "additionalProperties": false,
      "required": ["production"],
      "properties": {
        "staging": {"$ref": "#/$defs/patterns"},
        "production": {"$ref": "#/$defs/patterns", "minItems": 1}
      }
    },
    "items": {
      "type": "object",
      "additionalProperties": false,
      "minProperties": 1,
      "properties": {
        "packages": {
          "type": "array",
          "items": {
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "version"],
            "properties": {
              "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9+._-]*$"},
              "version": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9.+~:_-]*$"},
              "service": {"type": "string", "minLength": 1},
              "services": {"type": "array", "items": {"type": "string", "minLength": 1}}
            }
          }
        },
        "artifacts": {
          "type": "array",
          "items": {
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "source", "sha256"],
            "properties": {
              "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._+~-]*$"},
              "source": {"type": "string", "minLength": 1},
              "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
              "sha512": {"type": "string", "pattern": "^[0-9a-fA-F]{128}$"},
              "size": {"type": "integer", "minimum": 0},
              "checksum_file": {"type": "string"},
              "signature": {"type": "string"},
              "install": {"type": "boolean"},
              "package": {"type": "string"},
              "version": {"type": "string"}
            }
          }
        },
        "config_files": {
          "type": "array",
          "items": {
            "type": "object",
            "additionalProperties": false,
            "required": ["dest"],
            "properties": {
              "dest": {"type": "string", "pattern": "^/"},
              "template": {"type": "string"},
              "content": {"type": "string"},
              "owner": {"type": "string"},
              "group": {"type": "string"},
              "mode": {"type": "string", "pattern": "^0?[0-7]{3,4}$"},
              "service": {"type": "string"}
            },
            "oneOf": [{"required": ["template"]}, {"required": ["content"]}]
          }
        }
      }
    },
    "backup": {
      "type": "object",
      "additionalProperties": false,
      "required": ["paths"],
      "properties": {
        "paths": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^/"}},
        "exclude": {"type": "array", "items": {"type": "string"}}
      }
    },
    "window": {
      "type": "object",
      "additionalProperties": false,
      "required": ["start", "end"],
      "properties": {
        "start": {"$ref": "#/$defs/timestamp"},
        "end": {"$ref": "#/$defs/timestamp"},
        "timezone": {"type": "string", "minLength": 1},
        "grace_minutes": {"type": "integer", "minimum": 0, "maximum": 1440}
      }
    },
    "expected_downtime_minutes": {"type": "number", "minimum": 0},
    "risk": {"enum": ["low", "medium", "high", "critical"]},
    "dpia_required": {"type": "boolean"},
    "rollback": {
      "type": "object",
      "additionalProperties": false,
      "required": ["plan"],
      "properties": {
        "automatic": {"type": "boolean"},
        "plan": {"type": "string", "minLength": 1}
      }
    },
    "execution": {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "serial": {"oneOf": [{"type": "integer", "minimum": 1},
                              {"type": "string", "pattern": "^([1-9][0-9]?|100)%$"}]},
        "max_fail_percentage": {"type": "integer", "minimum": 0, "maximum": 100},
        "reboot_allowed": {"type": "boolean"}
      }
    },
    "test_plan": {
      "type": "object",
      "additionalProperties": false,
      "required": ["functional"],
      "properties": {
        "functional": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/check"}},
        "testinfra": {"type": "array", "items": {"type": "string"}},
        "security": {
          "type": "object",
          "additionalProperties": false,
          "properties": {
            "declared_ports": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}},
            "declared_setuid": {"type": "array", "items": {"type": "string", "pattern": "^/"}},
            "config_files": {"type": "array", "items": {"type": "string", "pattern": "^/"}}
          }
        }
      }
    },
    "monitoring": {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "duration_seconds": {"type": "integer", "minimum": 1},
        "interval_seconds": {"type": "integer", "minimum": 1},
        "http_url": {"type": "string"},
        "service": {"type": "string"},
        "thresholds": {
          "type": "object",
          "additionalProperties": false,
          "properties": {
            "availability_pct": {"type": "number", "minimum": 0, "maximum": 100},
            "p95_latency_ms": {"type": "number", "minimum": 0},
            "max_restarts": {"type": "integer", "minimum": 0},
            "max_journal_errors": {"type": "integer", "minimum": 0}
          }
        },
        "auto_rollback": {"type": "boolean"}
      }
    },
    "approvers": {
      "type": "object",
      "additionalProperties": false,
      "required": ["it_manager", "users", "security", "qa"],
      "properties": {
        "it_manager": {"$ref": "#/$defs/people"},
        "users": {"$ref": "#/$defs/people"},
        "security": {"$ref": "#/$defs/people"},
        "qa": {"$ref": "#/$defs/people"}
      }
    }
  },
  "$defs": {
    "person": {"type": "string", "pattern": "^[a-z][a-z0-9._-]{0,63}$"},
    "people": {"type": "array", "minItems": 1, "uniqueItems": true, "items": {"$ref": "#/$defs/person"}},
    "patterns": {"type": "array", "uniqueItems": true, "items": {"type": "string", "minLength": 1}},
    "timestamp": {
      "type": "string",
      "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?$"
    },
    "check": {
      "type": "object",
      "required": ["type"],
      "properties": {"type": {"enum": ["service", "port", "http", "package", "command", "file"]}},
      "allOf": [
        {"if": {"properties": {"type": {"const": "service"}}},
         "then": {"required": ["name"], "properties": {"state": {"enum": ["running", "stopped"]}}}},
        {"if": {"properties": {"type": {"const": "port"}}},
         "then": {"required": ["port"], "properties": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}}}},
        {"if": {"properties": {"type": {"const": "http"}}},
         "then": {"required": ["url"], "properties": {"url": {"type": "string", "pattern": "^https?://"},
                   "status": {"type": "integer", "minimum": 100, "maximum": 599},
                   "max_latency_ms": {"type": "number", "minimum": 0},
                   "body_contains": {"type": "string"}}}},
        {"if": {"properties": {"type": {"const": "package"}}},
         "then": {"required": ["name"]}},
        {"if": {"properties": {"type": {"const": "command"}}},
         "then": {"required": ["command"],
                  "properties": {"command": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                                 "rc": {"type": "integer"}}}},
        {"if": {"properties": {"type": {"const": "file"}}},
         "then": {"required": ["path"]}}
      ]
    }
  }
}
'''
SCHEMA = json.loads(SCHEMA_JSON)

#: largest change request file accepted (a real one is a few KB)
CHANGE_REQUEST_LIMIT = 256 * 1024
#: most values (scalars, lists, mappings) in a change request: the example has ~175; this bounds
#: the parse time of a hostile document within the size limit to a fraction of a second
CHANGE_REQUEST_MAX_VALUES = 5000

#: identifiers are plain ASCII, matched in full (see pattern_matches)
PERSON_ID_PATTERN = SCHEMA['$defs']['person']['pattern']
CHANGE_ID_PATTERN = SCHEMA['properties']['id']['pattern']

_TS_OFFSET_RE = re.compile(r'([+-])(\d{2}):?(\d{2})\Z')
_TS_HAS_OFFSET_RE = re.compile(r'(?:[Zz]|[+-]\d{2}:?\d{2})\Z')


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


# ---------------------------------------------------------------------------------------------
# paths and messages

def format_path(parts):
    """['items', 'packages', 0, 'version'] -> 'items.packages[0].version' ('(root)' when empty)."""
    out = ''
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += '[%d]' % part
        else:
            name = str(part)
            if not _PLAIN_KEY_RE.match(name):  # a control character, a look-alike letter, ...
                name = json.dumps(name)
            out += ('.' if out else '') + name
    return out or '(root)'


_PLAIN_KEY_RE = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.-]*\Z')


def _join(path, name):
    return [*path, name]


def _type_name(value):
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'boolean'
    if isinstance(value, int):
        return 'integer'
    if isinstance(value, float):
        return 'number'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, list):
        return 'array'
    if isinstance(value, dict):
        return 'object'
    return type(value).__name__


def _is_type(value, expected):
    actual = _type_name(value)
    if expected == 'number':
        return actual in ('integer', 'number')
    return actual == expected


def _short(value):
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + '...'


# ---------------------------------------------------------------------------------------------
# built-in validator (subset of JSON Schema 2020-12 used by the schema)

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
        yield path, 'must be %s' % _short(schema['const'])
        return
    if 'enum' in schema and value not in schema['enum']:
        yield path, '%s is not one of %s' % (_short(value), ', '.join(_short(v) for v in schema['enum']))
        return
    if 'type' in schema and not _is_type(value, schema['type']):
        yield path, 'must be of type %s, found %s' % (schema['type'], _type_name(value))
        return
    if isinstance(value, str):
        if 'minLength' in schema and len(value) < schema['minLength']:
            yield path, 'must not be shorter than %d characters' % schema['minLength']
        if 'maxLength' in schema and len(value) > schema['maxLength']:
            yield path, 'must not be longer than %d characters' % schema['maxLength']
        if 'pattern' in schema and not pattern_matches(schema['pattern'], value):
            yield path, '%s does not match %s' % (_short(value), schema['pattern'])
    if _type_name(value) in ('integer', 'number'):
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
                    yield path, 'has duplicate item %s' % _short(item)
                    break
                seen.append(item)
        if 'items' in schema:
            for index, item in enumerate(value):
                yield from _builtin_errors(item, schema['items'], _join(path, index))
    if isinstance(value, dict):
        for name in schema.get('required', []):
            if name not in value:
                yield _join(path, name), 'is required'
        if 'minProperties' in schema and len(value) < schema['minProperties']:
            yield path, 'must have at least %d field(s)' % schema['minProperties']
        props = schema.get('properties', {})
        for name in sorted(value, key=str):
            if name in props:
                yield from _builtin_errors(value[name], props[name], _join(path, name))
            elif schema.get('additionalProperties') is False:
                yield _join(path, name), 'unknown field'
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
        return [(_join(path, name), 'is required')]
    if kind == 'additionalProperties':
        props = error.schema.get('properties', {})
        unknown = sorted((k for k in error.instance if k not in props), key=str)
        return [(_join(path, name), 'unknown field') for name in unknown]
    if kind == 'type':
        return [(path, 'must be of type %s, found %s' % (error.validator_value, _type_name(error.instance)))]
    if kind == 'enum':
        allowed = ', '.join(_short(v) for v in error.validator_value)
        return [(path, '%s is not one of %s' % (_short(error.instance), allowed))]
    if kind == 'const':
        return [(path, 'must be %s' % _short(error.validator_value))]
    if kind == 'pattern':
        return [(path, '%s does not match %s' % (_short(error.instance), error.validator_value))]
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
        return [(path, 'has duplicate item %s' % _short(dup))]
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
    return sorted(_unique(['%s: %s' % (format_path(p), m) for p, m in pairs]))


def _unique(messages):
    out = []
    for msg in messages:
        if msg not in out:
            out.append(msg)
    return out


# ---------------------------------------------------------------------------------------------
# time

def _parse_as_written(text, tz_name=None):
    """(aware datetime with the offset as written, True when the text had an explicit offset)."""
    if isinstance(text, datetime.datetime):
        value = text
    else:
        raw = str(text).strip().replace(' ', 'T', 1)
        if raw.endswith('Z') or raw.endswith('z'):
            raw = raw[:-1] + '+00:00'
        raw = _TS_OFFSET_RE.sub(lambda m: '%s%s:%s' % (m.group(1), m.group(2), m.group(3)), raw)
        # Python < 3.11 fromisoformat accepts only 0, 3 or 6 fraction digits
        frac = re.search(r'\.(\d+)', raw)
        if frac:
            digits = (frac.group(1) + '000000')[:6]
            raw = raw[:frac.start()] + '.' + digits + raw[frac.end():]
        value = datetime.datetime.fromisoformat(raw)
    if value.tzinfo is not None:
        return value, True
    return value.replace(tzinfo=get_timezone(tz_name or DEFAULT_TIMEZONE)), False


def parse_timestamp(text, tz_name=None):
    """Parse an ISO-8601 timestamp; a naive one is read in tz_name. Returns an aware datetime (UTC).

    An explicit offset is taken as written; offset_disagreement() tells whether it agrees with
    the time zone (the change request refuses one that does not).
    """
    return _parse_as_written(text, tz_name)[0].astimezone(datetime.timezone.utc)


def explicit_offset(text):
    """The UTC offset written in an ISO-8601 timestamp (a timedelta), or None when it is naive."""
    value, explicit = _parse_as_written(text, 'UTC')
    return value.utcoffset() if explicit else None


def format_offset(delta):
    """timedelta -> '+07:00' / '-03:30'."""
    seconds = int(delta.total_seconds())
    sign = '-' if seconds < 0 else '+'
    seconds = abs(seconds)
    out = '%s%02d:%02d' % (sign, seconds // 3600, (seconds % 3600) // 60)
    return out + (':%02d' % (seconds % 60) if seconds % 60 else '')


def offset_disagreement(text, tz_name, zone_field='time zone'):
    """None when ``text`` is naive or its explicit offset is the one ``tz_name`` has at that instant.

    Otherwise a sentence naming the offset given and the zone's offset at that instant: an offset
    that disagrees with the window's time zone is almost always a mistake (a local time written
    with ``Z``, or a time copied from another zone) and silently changes the window's length.
    Raises ValueError when ``text`` or ``tz_name`` cannot be read.
    """
    given = explicit_offset(text)
    if given is None:
        return None
    zone = get_timezone(tz_name)
    instant = parse_timestamp(text)
    expected = instant.astimezone(zone).utcoffset()
    if expected == given:
        return None
    return ('offset %s given in %s disagrees with %s %s (%s at that instant, where this time is %s)'
            % (format_offset(given), text if isinstance(text, str) else text.isoformat(), zone_field, tz_name,
               format_offset(expected), instant.astimezone(zone).isoformat()))


def get_timezone(name):
    """Return a tzinfo for an IANA name; raises ValueError when unknown."""
    if name in ('UTC', 'Etc/UTC', 'Z'):
        return datetime.timezone.utc
    if not HAS_ZONEINFO:
        raise ValueError('time zone %s cannot be resolved without zoneinfo (Python 3.9+)' % name)
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError('unknown time zone %s' % name) from None


def utc_iso(value):
    return value.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


# ---------------------------------------------------------------------------------------------
# semantic checks

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
            if isinstance(window.get(key), str) and not _bad_characters(window[key], False):
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
    if isinstance(items, dict) and items and not packages and not artifacts and not items.get('config_files'):
        errors.append('items: lists no package, artifact or config file to change')

    approvers = data.get('approvers') if isinstance(data.get('approvers'), dict) else {}
    for role in ('it_manager', 'users', 'security', 'qa'):
        people = approvers.get(role)
        if isinstance(people, list) and not [p for p in people if isinstance(p, str) and p.strip()]:
            errors.append('approvers.%s: needs at least one approver' % role)
    return _character_errors(data, []) + errors


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


# ---------------------------------------------------------------------------------------------
# characters: identifiers are plain ASCII (full match of their pattern, see pattern_matches);
# no string may carry a control character or a bidirectional override (they rewrite what a
# terminal or a page shows); only the free-text fields below may span lines.

#: fields that may hold several lines of text (tab, CR and LF allowed)
FREE_TEXT_FIELDS = (
    ('description',), ('reason', 'details'), ('rollback', 'plan'),
    ('items', 'config_files', None, 'content'),
    ('test_plan', 'functional', None, 'body_contains'), ('test_plan', 'functional', None, 'command', None),
)
_MULTILINE_OK = '\t\n\r'
#: bidirectional embeddings, overrides and isolates, the Arabic letter mark (Trojan Source)
_BIDI_CONTROLS = frozenset('\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069')


def describe_character(char):
    """'U+0430 CYRILLIC SMALL LETTER A' (or the code point alone when it has no name)."""
    name = unicodedata.name(char, '')
    return 'U+%04X%s' % (ord(char), ' ' + name if name else '')


def _bad_characters(value, multiline):
    """The first character ``value`` must not contain, as (index, char), or None."""
    for index, char in enumerate(value):
        if multiline and char in _MULTILINE_OK:
            continue
        if char in _BIDI_CONTROLS:
            return index, char
        category = unicodedata.category(char)
        if category in ('Cc', 'Zl', 'Zp', 'Cs') or (category == 'Cf' and not multiline):
            return index, char
    return None


def text_problem(value, multiline=False):
    """None when ``value`` is acceptable text, else which character is not and where.

    One-line text (``multiline`` false) may hold no control (Cc), format (Cf: zero-width and bidi
    characters), line/paragraph separator or surrogate character; multi-line text may also hold
    tab, CR and LF but still no other control character and no bidi control.
    """
    bad = _bad_characters(value, multiline)
    if not bad:
        return None
    return 'contains %s at position %d (%s)' % (
        describe_character(bad[1]), bad[0],
        'control and bidirectional override characters are not accepted' if multiline
        else 'one line of text without control or format characters')


def _is_free_text(path):
    for pattern in FREE_TEXT_FIELDS:
        if len(pattern) == len(path) and all(pattern[i] is None or pattern[i] == path[i] for i in range(len(path))):
            return True
    return False


def _character_errors(value, path):
    out = []
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            if isinstance(key, str) and _bad_characters(key, False):
                index, char = _bad_characters(key, False)
                out.append('%s: field name contains %s at position %d'
                           % (format_path(_join(path, key)), describe_character(char), index))
                continue
            out.extend(_character_errors(value[key], _join(path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.extend(_character_errors(item, _join(path, index)))
    elif isinstance(value, str):
        problem = text_problem(value, _is_free_text(path))
        if problem:
            out.append('%s: %s' % (format_path(path), problem))
    elif isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        # YAML .nan/.inf: passes every minimum/maximum comparison and is not JSON
        out.append('%s: must be a finite number, found %s' % (format_path(path), value))
    return out


def id_problem(value, pattern):
    """None when ``value`` is an identifier matching ``pattern`` in full; else why it is not.

    Identifiers (person ids, change ids) are plain ASCII: a look-alike letter from another
    script, such as a Cyrillic a (U+0430) in a Latin name, or a trailing newline is named, never
    accepted.
    """
    if not isinstance(value, str):
        return 'must be a string, found %s' % _type_name(value)
    for index, char in enumerate(value):
        if ord(char) > 126 or ord(char) < 33:
            return ('%s contains %s at position %d; ids are plain ASCII matching %s'
                    % (_short(value), describe_character(char), index, pattern))
    if not pattern_matches(pattern, value):
        return '%s does not match %s' % (_short(value), pattern)
    return None


def validate_change_request(data, use_jsonschema=None):
    """Return every problem with a change request as "field.path: reason" strings ([] when valid)."""
    if not isinstance(data, dict):
        return ['(root): the change request must be a mapping, found %s' % _type_name(data)]
    data = plain(data)
    semantic = _semantic_errors(data)
    # a semantic message says more than the schema's about the same field: keep only that one
    explained = set(msg.split(': ', 1)[0] for msg in semantic)
    errors = [msg for msg in schema_errors(data, use_jsonschema=use_jsonschema)
              if msg.split(': ', 1)[0] not in explained]
    return _unique(errors + semantic)


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
    window['start_epoch'] = int(_epoch(start))
    window['end_epoch'] = int(_epoch(end))
    window['duration_minutes'] = int((end - start).total_seconds() // 60)
    wrong = ['window.%s: %r does not match window.start/end/timezone (derived value %r)' % (key, value, window[key])
             for key, value in sorted(derived.items()) if value != window[key]]
    if wrong:
        raise ChangeRequestError(wrong)
    return out


def _epoch(value):
    return (value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds()
