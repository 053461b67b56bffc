# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The JSON Schema of change request format v1 (Form Permintaan Perubahan Sistem).

``schemas/change_request.v1.json`` is the published schema; an exact copy is embedded here
(``SCHEMA_JSON``) so the modules work inside AnsiballZ, and a unit test keeps the two identical.
Semantic rules that JSON Schema cannot express are in ``change_request.py``.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json


API_VERSION = 'itsop.change/v1'


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
              "template_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
              "content": {"type": "string"},
              "owner": {"type": "string"},
              "group": {"type": "string"},
              "mode": {"type": "string", "pattern": "^0?[0-7]{3,4}$"},
              "service": {"type": "string"}
            },
            "oneOf": [{"required": ["template"]}, {"required": ["content"]}]
          }
        },
        "network_config": {
          "type": "object",
          "additionalProperties": false,
          "properties": {
            "lines": {"type": "string", "minLength": 1},
            "template": {"type": "string", "minLength": 1},
            "vars": {"type": "object"},
            "confirm_timeout": {"type": "integer", "minimum": 30, "maximum": 3600}
          },
          "oneOf": [{"required": ["lines"]}, {"required": ["template"]}]
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
      "anyOf": [{"required": ["functional"]}, {"required": ["network"]}],
      "properties": {
        "functional": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/check"}},
        "network": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/network_check"}},
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
    },
    "network_check": {
      "type": "object",
      "additionalProperties": false,
      "required": ["type"],
      "properties": {
        "type": {"enum": ["bgp_neighbor", "ospf_neighbor", "route", "route_count", "ping", "traceroute",
                          "config_contains", "config_lacks"]},
        "name": {"type": "string", "minLength": 1},
        "neighbor": {"type": "string", "minLength": 1},
        "state": {"type": "string", "minLength": 1},
        "min_prefixes": {"type": "integer", "minimum": 0},
        "prefix": {"type": "string", "minLength": 1},
        "protocol": {"type": "string", "minLength": 1},
        "min_routes": {"type": "integer", "minimum": 0},
        "max_routes": {"type": "integer", "minimum": 0},
        "destination": {"type": "string", "pattern": "^[0-9]{1,3}(\\.[0-9]{1,3}){3}$"},
        "source": {"type": "string", "pattern": "^[0-9]{1,3}(\\.[0-9]{1,3}){3}$"},
        "count": {"type": "integer", "minimum": 1, "maximum": 100},
        "max_loss_pct": {"type": "integer", "minimum": 0, "maximum": 100},
        "via": {"type": "array", "items": {"type": "string", "pattern": "^[0-9]{1,3}(\\.[0-9]{1,3}){3}$"}},
        "max_hops": {"type": "integer", "minimum": 1, "maximum": 64},
        "line": {"type": "string", "minLength": 1},
        "regex": {"type": "boolean"}
      },
      "allOf": [
        {"if": {"properties": {"type": {"enum": ["bgp_neighbor", "ospf_neighbor"]}}},
         "then": {"required": ["neighbor"]}},
        {"if": {"properties": {"type": {"const": "route"}}}, "then": {"required": ["prefix"]}},
        {"if": {"properties": {"type": {"const": "route_count"}}}, "then": {"required": ["protocol"]}},
        {"if": {"properties": {"type": {"enum": ["ping", "traceroute"]}}}, "then": {"required": ["destination"]}},
        {"if": {"properties": {"type": {"enum": ["config_contains", "config_lacks"]}}}, "then": {"required": ["line"]}}
      ]
    }
  }
}'''
SCHEMA = json.loads(SCHEMA_JSON)


#: identifiers are plain ASCII, matched in full (see pattern_matches)
PERSON_ID_PATTERN = SCHEMA['$defs']['person']['pattern']
CHANGE_ID_PATTERN = SCHEMA['properties']['id']['pattern']
