#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: change_request_info
short_description: Load and validate a change request (Form Permintaan Perubahan Sistem)
version_added: 0.1.0
description:
  - Loads a change request in format v1 from a YAML or JSON file, or takes it as a mapping,
    validates it against the schema C(schemas/change_request.v1.json) and the semantic rules the
    schema cannot express (window end after start, known time zone, references for a security
    recommendation, staging and production targets kept apart), and returns the normalised change.
  - Normalisation fills in the defaults (time zone V(Asia/Jakarta), grace 0, serial 1,
    max_fail_percentage 0, automatic rollback, and so on) and adds the window in UTC
    (C(window.start_utc), C(window.end_utc), C(window.start_epoch), C(window.end_epoch)).
  - "When the change request is invalid the module fails, and its message names every bad field
    and the reason, for example C(window.end: must be after window.start)."
  - "The module only reads. Run it on the controller (C(delegate_to: localhost)), where the file is."
  - Uses the Python C(jsonschema) library when it is installed, else a built-in validator for the
    subset of JSON Schema the schema uses; both give the same messages.
author:
  - itsop.change engineers (@itsop)
extends_documentation_fragment:
  - itsop.change.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: The module only reads; it does the same in check mode.
options:
  path:
    description:
      - Change request file (YAML or JSON).
      - It must be a regular file of at most 256 KiB (a FIFO, device or directory is refused
        without being read); YAML aliases, anchors and merge keys and duplicate keys are refused,
        naming the key and both lines.
    type: path
  data:
    description: The change request as a mapping (for example the extra var C(itsop_change)).
    type: dict
notes:
  - Exactly one of O(path) and O(data) is required.
seealso:
  - name: Change request format
    description: The format, its fields and its validation rules (docs/change-request.md).
    link: https://github.com/itsop/change/blob/main/docs/change-request.md
'''

EXAMPLES = r'''
- name: Load and validate the change request
  itsop.change.change_request_info:
    path: "{{ itsop_change_file }}"
  delegate_to: localhost
  run_once: true
  register: __change

- name: Validate a change request given as an extra var
  itsop.change.change_request_info:
    data: "{{ itsop_change }}"
  delegate_to: localhost
  run_once: true
  register: __change

- name: Use the normalised change
  ansible.builtin.debug:
    msg: "{{ __change.change.id }} window {{ __change.change.window.start_utc }} - {{ __change.change.window.end_utc }}"
'''

RETURN = r'''
change:
  description: The normalised change request (defaults applied, window also in UTC).
  returned: success
  type: dict
  sample:
    id: CHG-2026-0042
    type: security_patch
    window:
      start: "2026-11-24T22:00:00+07:00"
      end: "2026-11-25T02:00:00+07:00"
      timezone: Asia/Jakarta
      grace_minutes: 0
      start_utc: "2026-11-24T15:00:00Z"
      end_utc: "2026-11-24T19:00:00Z"
      start_epoch: 1795532400
      end_epoch: 1795546800
      duration_minutes: 240
    execution: {serial: 1, max_fail_percentage: 0, reboot_allowed: false}
errors:
  description: "Every problem found, as C(<field path>: <reason>). Empty on success."
  returned: always
  type: list
  elements: str
  sample: ["window.end: must be after window.start", "items.packages[0].version: is required"]
validator:
  description: Which validator checked the schema, V(jsonschema) or V(builtin).
  returned: always
  type: str
  sample: jsonschema
'''

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._change_request.validator import HAS_JSONSCHEMA  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils.change_request import (  # noqa: E402
    ChangeRequestError,
    bind_templates,
    load_change_request,
    normalise_change_request,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path'),
            data=dict(type='dict'),
        ),
        mutually_exclusive=[('path', 'data')],
        required_one_of=[('path', 'data')],
        supports_check_mode=True,
    )
    validator = 'jsonschema' if HAS_JSONSCHEMA else 'builtin'
    source = module.params['path'] or 'data'
    try:
        if module.params['path']:
            data = load_change_request(module.params['path'])
        else:
            data = module.params['data']
    except ChangeRequestError as exc:
        module.fail_json(msg=str(exc), errors=exc.errors, validator=validator)

    try:
        # validates first (every bad field named); also accepts an already normalised change
        change = normalise_change_request(data)
        if module.params['path']:  # the templates beside the file, bound by their digest
            bind_templates(change, os.path.dirname(os.path.abspath(module.params['path'])))
    except ChangeRequestError as exc:
        module.fail_json(msg='change request %s is invalid: %s' % (source, '; '.join(exc.errors)),
                         errors=exc.errors, validator=validator)
    module.exit_json(changed=False, change=change, errors=[], validator=validator)


if __name__ == '__main__':
    main()
