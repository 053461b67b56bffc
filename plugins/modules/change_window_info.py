#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: change_window_info
short_description: Tell whether now is inside a change's approved window
version_added: 0.1.0
description:
  - Compares the current time (or O(now)) with an approved change window and returns
    RV(state) V(before), V(inside), V(grace) (after the end but within O(grace_minutes)) or
    V(after), and RV(open) (true for V(inside) and V(grace)).
  - Stage 3 runs it on the controller before touching any host and again before every batch
    (SOP step 3.1, execute only in the approved schedule).
  - The module only reads; it never fails because the window is closed. Use O(fail_when_closed)
    to make it fail.
author:
  - itsop.change engineers (@itsop)
extends_documentation_fragment:
  - itsop.change.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: The module only reads.
options:
  start:
    description:
      - Window start, ISO-8601; a timestamp without offset is read in O(timezone).
      - A timestamp with an offset must carry the offset O(timezone) has at that instant; one that
        disagrees (for example a local time written with V(Z)) makes the module fail, naming both.
    type: str
    required: true
  end:
    description: Window end, ISO-8601; must be after O(start). The same offset rule as O(start).
    type: str
    required: true
  timezone:
    description: IANA time zone of the window (naive timestamps are read in it; explicit offsets must agree with it).
    type: str
    default: Asia/Jakarta
  grace_minutes:
    description: Minutes after O(end) during which a new batch may still start.
    type: int
    default: 0
  now:
    description:
      - Use this time instead of the clock. For tests only; stage 3 passes the extra var
        C(itsop_now) here, which must never be set in a real change.
    type: str
  fail_when_closed:
    description: Fail when the window is not open, with a message saying when it opens or closed.
    type: bool
    default: false
'''

EXAMPLES = r'''
- name: Refuse to start outside the approved window
  itsop.change.change_window_info:
    start: "{{ change.window.start }}"
    end: "{{ change.window.end }}"
    timezone: "{{ change.window.timezone }}"
    grace_minutes: "{{ change.window.grace_minutes }}"
    fail_when_closed: true
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
state:
  description: V(before), V(inside), V(grace) or V(after).
  returned: success
  type: str
  sample: inside
open:
  description: Whether work may start now (V(inside) or V(grace)).
  returned: success
  type: bool
  sample: true
message:
  description: One sentence describing the position in the window.
  returned: success
  type: str
  sample: inside the change window 2026-11-24T15:00:00Z - 2026-11-24T19:00:00Z (now 2026-11-24T16:00:00Z)
now_utc:
  description: The time compared, UTC.
  returned: success
  type: str
  sample: "2026-11-24T16:00:00Z"
start_utc:
  description: Window start, UTC.
  returned: success
  type: str
  sample: "2026-11-24T15:00:00Z"
end_utc:
  description: Window end, UTC.
  returned: success
  type: str
  sample: "2026-11-24T19:00:00Z"
close_utc:
  description: Window end plus grace, UTC; no batch starts after it.
  returned: success
  type: str
  sample: "2026-11-24T19:00:00Z"
seconds_until_start:
  description: Seconds until the window opens (0 once open).
  returned: success
  type: int
  sample: 0
seconds_until_close:
  description: Seconds until the window including grace closes (0 once closed).
  returned: success
  type: int
  sample: 10800
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils.window import describe, window_status  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            start=dict(type='str', required=True),
            end=dict(type='str', required=True),
            timezone=dict(type='str', default='Asia/Jakarta'),
            grace_minutes=dict(type='int', default=0),
            now=dict(type='str'),
            fail_when_closed=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p['grace_minutes'] < 0:
        module.fail_json(msg='grace_minutes: must be 0 or more, got %d' % p['grace_minutes'])
    try:
        status = window_status(p['start'], p['end'], now=p['now'], grace_minutes=p['grace_minutes'],
                               timezone=p['timezone'])
    except ValueError as exc:
        module.fail_json(msg='change window: %s' % exc)
    status['message'] = describe(status)
    if p['fail_when_closed'] and not status['open']:
        module.fail_json(msg='outside the approved change window: %s' % status['message'], **status)
    module.exit_json(changed=False, **status)


if __name__ == '__main__':
    main()
