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
import re

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

from ansible.module_utils.common.yaml import HAS_YAML, yaml_load

try:
    from yaml import YAMLError
except ImportError:  # pragma: no cover - PyYAML missing; JSON files still load
    YAMLError = ValueError

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
              "name": {"type": "string", "pattern": "^[^/]+$"},
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

_TS_OFFSET_RE = re.compile(r'([+-])(\d{2}):?(\d{2})$')


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
    validate; call validate_change_request() or normalise_change_request() for that.
    """
    try:
        with open(path, 'rb') as handle:
            raw = handle.read()
    except (IOError, OSError) as exc:
        raise ChangeRequestError('%s: cannot read the change request (%s)' % (path, exc)) from exc
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise ChangeRequestError('%s: not UTF-8 text (%s)' % (path, exc)) from exc
    if not HAS_YAML:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ChangeRequestError('%s: PyYAML is missing and the file is not JSON (%s)' % (path, exc)) from exc
    else:
        try:
            data = yaml_load(text)
        except (YAMLError, ValueError) as exc:  # the parser's message names the line
            raise ChangeRequestError('%s: not valid YAML (%s)' % (path, exc)) from exc
    if not isinstance(data, dict):
        raise ChangeRequestError('%s: the change request must be a mapping, found %s'
                                 % (path, type(data).__name__))
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
        if isinstance(part, int):
            out += '[%d]' % part
        else:
            out += ('.' if out else '') + str(part)
    return out or '(root)'


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
        if 'pattern' in schema and not re.search(schema['pattern'], value):
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


def _jsonschema_errors(data):
    validator_cls = jsonschema.validators.validator_for(SCHEMA)
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
            if jsonschema.validators.validator_for(SCHEMA)(sub).is_valid(error.instance):
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

def parse_timestamp(text, tz_name=None):
    """Parse an ISO-8601 timestamp; a naive one is read in tz_name. Returns an aware datetime (UTC)."""
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
    if value.tzinfo is None:
        value = value.replace(tzinfo=get_timezone(tz_name or DEFAULT_TIMEZONE))
    return value.astimezone(datetime.timezone.utc)


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
    if tz_ok:
        for key in ('start', 'end'):
            if isinstance(window.get(key), str):
                try:
                    parsed = parse_timestamp(window[key], tz_name)
                except ValueError as exc:
                    errors.append('window.%s: not a valid timestamp (%s)' % (key, exc))
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
    if isinstance(items, dict) and items and not packages and not artifacts and not items.get('config_files'):
        errors.append('items: lists no package, artifact or config file to change')

    approvers = data.get('approvers') if isinstance(data.get('approvers'), dict) else {}
    for role in ('it_manager', 'users', 'security', 'qa'):
        people = approvers.get(role)
        if isinstance(people, list) and not [p for p in people if isinstance(p, str) and p.strip()]:
            errors.append('approvers.%s: needs at least one approver' % role)
    return errors


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
