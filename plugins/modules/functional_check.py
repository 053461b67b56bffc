#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: functional_check
short_description: Run a change request's functional checks (HTTP, service, port, package, command) on the host
version_added: 0.1.0
description:
  - Runs the checks of a change request's C(test_plan.functional) (SOP steps 3.4 and 4.1) on the managed host
    in one call and returns one result per check, in the order given.
  - Each check is tried until it passes, at most O(retries) + 1 times, O(delay) seconds apart. Role
    C(itsop.change.update) retries (a restarted service needs a moment); role C(itsop.change.validate)
    samples once (O(retries=0)).
  - A failed check does not fail the module; it returns RV(passed=false) and the failed checks' messages, so
    the caller decides (update and rollback fail the host, validate records the evidence first). The module
    fails on bad options, for example a check without the field its type needs.
  - Nothing is changed on the host; the module returns C(changed=false). Command checks are run in check
    mode too (they are read-only by contract of the test plan).
author:
  - itsop.change engineers (@itsop)
extends_documentation_fragment:
  - itsop.change.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: The module only reads; it checks the same way in check mode (command checks are run too).
  platform:
    details: Service checks need systemd; package checks need C(dpkg-query) or C(rpm).
options:
  checks:
    description:
      - The checks, in the change request's C(test_plan.functional) format.
      - "Fields used per O(checks[].type): C(http) O(checks[].url), O(checks[].status),
        O(checks[].max_latency_ms), O(checks[].body_contains), O(checks[].timeout); C(service) O(checks[].name),
        O(checks[].state), O(checks[].enabled); C(port) O(checks[].port), O(checks[].host),
        O(checks[].timeout); C(package) O(checks[].name), O(checks[].version); C(command) O(checks[].command),
        O(checks[].rc), O(checks[].stdout_contains), O(checks[].name); C(file) O(checks[].path). The fields of
        other types are ignored; a field not listed here fails the module."
    type: list
    elements: dict
    required: true
    suboptions:
      type:
        description: What is checked.
        type: str
        required: true
        choices: [http, service, port, package, command, file]
      name:
        description:
          - C(service) the systemd unit (C(.service) is added when the name has no dot); C(package) the package.
          - C(command) a label for the result instead of the command line.
          - Required for C(service) and C(package).
        type: str
      url:
        description:
          - C(http) URL requested once per attempt from the host itself (C(GET), redirects not followed).
          - Required for C(http).
        type: str
      status:
        description: C(http) the expected HTTP status.
        type: int
        default: 200
      body_contains:
        description: C(http) text the response body (its first MiB) must contain.
        type: str
      max_latency_ms:
        description: C(http) highest allowed time for the request and its body, in milliseconds.
        type: float
      timeout:
        description:
          - C(http) timeout of the request in seconds (default O(http_timeout)).
          - C(port) how long to wait for the port to accept a connection, in seconds (default O(port_timeout)).
        type: float
      state:
        description:
          - C(service) C(running) (systemd ActiveState C(active)) or C(stopped) (known to systemd and
            C(inactive) or C(failed)). A unit systemd does not know passes neither.
        type: str
        choices: [running, stopped]
        default: running
      enabled:
        description: C(service) whether the unit must be enabled (C(true)) or not (C(false)); not checked when omitted.
        type: bool
      port:
        description:
          - C(port) the TCP port that must accept connections.
          - Required for C(port).
        type: int
      host:
        description: C(port) the address connected to.
        type: str
        default: 127.0.0.1
      version:
        description:
          - C(package) the expected version; C(1.1.0) matches C(1.1.0) and C(1.1.0-<release>).
            Any installed version passes when omitted.
        type: str
      command:
        description:
          - C(command) the argument list, program first (no shell).
          - Required for C(command).
        type: list
        elements: str
      rc:
        description: C(command) the expected return code.
        type: int
        default: 0
      stdout_contains:
        description: C(command) text the standard output must contain.
        type: str
      path:
        description:
          - C(file) absolute path that must exist on the host (checked with C(lstat), links are not followed);
            the result names its kind, mode, owner and size.
          - Required for C(file).
        type: str
  retries:
    description: How many more times a failed check is tried before it counts as failed.
    type: int
    default: 0
  delay:
    description: Seconds between two attempts of a check.
    type: float
    default: 1.0
  http_timeout:
    description: Timeout of an HTTP request in seconds, for checks without O(checks[].timeout).
    type: float
    default: 10.0
  port_timeout:
    description: Seconds to wait for a port to accept a connection, for checks without O(checks[].timeout).
    type: float
    default: 5.0
  validate_certs:
    description: Verify the TLS certificates of HTTPS URLs.
    type: bool
    default: true
  package_manager:
    description:
      - How installed versions are read. C(dpkg) uses C(dpkg-query) (apt systems), C(rpm) uses C(rpm).
      - C(auto) uses C(dpkg-query) when the host has it and C(rpm) otherwise.
    type: str
    choices: [auto, dpkg, rpm]
    default: auto
seealso:
  - module: itsop.change.health_watch
  - module: itsop.change.change_request_info
'''

EXAMPLES = r'''
- name: Check the changed host, retrying while the service comes up
  itsop.change.functional_check:
    checks:
      - {type: service, name: itsop-demo-web, state: running}
      - {type: port, port: 8080}
      - {type: http, url: "http://127.0.0.1:8080/health", status: 200, max_latency_ms: 1000}
      - {type: http, url: "http://127.0.0.1:8080/", body_contains: "1.1.0"}
      - {type: package, name: itsop-demo-web, version: "1.1.0"}
      - {type: command, command: [systemctl, is-enabled, itsop-demo-web], stdout_contains: enabled}
    retries: 10
    delay: 2
  register: checked

- name: Fail naming the failed checks
  ansible.builtin.assert:
    that: checked.passed
    fail_msg: "{{ checked.results | rejectattr('passed') | map(attribute='message') | join('; ') }}"

- name: The change request's test plan, sampled once
  itsop.change.functional_check:
    checks: "{{ itsop_change.test_plan.functional }}"
'''

RETURN = r'''
passed:
  description: Whether every check passed.
  returned: always
  type: bool
  sample: false
results:
  description: One entry per check of O(checks), in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    type:
      description: The check's type.
      type: str
      sample: http
    name:
      description: What was checked, for example C(http http://127.0.0.1:8080/health), C(service itsop-demo-web),
        C(port 127.0.0.1:8080), C(package itsop-demo-web), C(command systemctl is-enabled itsop-demo-web).
      type: str
      sample: http http://127.0.0.1:8080/health
    passed:
      description: Whether the check passed (at its last attempt).
      type: bool
    expected:
      description:
        - "What the check asked for: C(http) C({status, max_latency_ms, body_contains}); C(service)
          C({state, enabled}); C(port) C({host, port, state: listening}); C(package) C({version}) (C(any) when
          not given); C(command) C({rc, stdout_contains})."
      type: dict
      sample: {status: 200, max_latency_ms: 1000.0, body_contains: null}
    actual:
      description:
        - "What was found at the last attempt: C(http) C({status, latency_ms, error, body_contains});
          C(service) C({state, status, active_state}) (state C(running), C(stopped), C(missing) or systemd's
          transitional state; status the unit file state); C(port) C({elapsed_s, error}); C(package)
          C({versions, manager}); C(command) C({rc, stdout, stderr, error}) (output cut at 2000 characters)."
      type: dict
      sample: {status: 200, latency_ms: 3.1, error: null, body_contains: null}
    message:
      description: One line saying what was found against what was expected.
      type: str
      sample: status 503 (expected 200), 2.4 ms (max 1000.0 ms)
    attempts:
      description: How many times the check was tried.
      type: int
      sample: 1
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._functional.run import run_checks  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._functional.spec import (  # noqa: E402
    ARGUMENT_SPEC, option_errors)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    errors = option_errors(p)
    if errors:
        module.fail_json(msg='invalid options: ' + '; '.join(errors))
    module.exit_json(changed=False, **run_checks(module, p))


if __name__ == '__main__':
    main()
