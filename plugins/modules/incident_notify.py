#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: incident_notify
short_description: Send an incident to webhooks as generic JSON, Slack or Microsoft Teams messages
version_added: 0.1.0
description:
  - Posts one incident (SOP step 5.3, UU 27/2022 Ps 46 incident timestamps) to each of O(webhooks)
    as a JSON C(POST).
  - "Formats: V(generic) sends C({type, version, text, incident}); V(slack) sends an incoming-webhook
    message C({text, blocks}); V(teams) sends an Office 365 connector C(MessageCard)."
  - Webhook URLs carry tokens and are treated as secrets. The O(webhooks[].url) option is
    C(no_log); results and messages name a webhook only by scheme, host and port
    (C(https://hooks.example.com/<redacted>)).
  - "Usually run on the controller (C(delegate_to: localhost)), which is where webhooks can be reached."
author:
  - itsop.change engineers (@itsop)
extends_documentation_fragment:
  - itsop.change.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: In check mode nothing is sent; RV(deliveries) lists what would be sent with status V(null).
options:
  webhooks:
    description: Webhooks to notify.
    type: list
    elements: dict
    required: true
    suboptions:
      url:
        description: Webhook URL (a secret; never returned or logged).
        type: str
        required: true
      format:
        description: Payload format.
        type: str
        choices: [generic, slack, teams]
        default: generic
      name:
        description: Name of the webhook used in results instead of the URL's host.
        type: str
  incident:
    description:
      - The incident, as recorded by role C(itsop.change.monitor). Keys used in the messages are
        C(id), C(change_id), C(host), C(what), C(severity), C(detected_at), C(action),
        C(evidence) and C(breaches) (each C({metric, message, first_seen})). The whole dict goes
        into the V(generic) payload.
    type: dict
    required: true
  timeout:
    description: Timeout of each request in seconds.
    type: int
    default: 10
  validate_certs:
    description: Verify TLS certificates.
    type: bool
    default: true
  fail_on_error:
    description:
      - Fail when any webhook could not be reached or did not answer 2xx. With V(false) failed
        deliveries are only reported in RV(deliveries) and RV(failed_deliveries).
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: Notify the on-call channels from the controller
  itsop.change.incident_notify:
    webhooks:
      - url: "{{ vault_slack_webhook }}"
        format: slack
      - url: "{{ vault_teams_webhook }}"
        format: teams
      - url: http://127.0.0.1:9000/incidents
    incident:
      id: INC-CHG-2026-0042-web1-1
      change_id: CHG-2026-0042
      host: web1
      what: health breach after go-live
      severity: high
      detected_at: "2026-11-24T15:04:10Z"
      action: automatic rollback
      breaches:
        - metric: availability_pct
          message: availability 0.00% below 99%
  delegate_to: localhost
'''

RETURN = r'''
deliveries:
  description: One entry per webhook, in order.
  returned: always
  type: list
  elements: dict
  contains:
    webhook:
      description: O(webhooks[].name), or the redacted URL.
      type: str
      sample: "http://127.0.0.1:8765/<redacted>"
    format:
      description: Payload format sent.
      type: str
    status:
      description: HTTP status answered, or V(null) when nothing was sent or no answer came.
      type: int
    ok:
      description: Whether the webhook answered 2xx.
      type: bool
    error:
      description: Why delivery failed (with the URL redacted).
      type: str
    sent_at:
      description: UTC time of the request.
      type: str
failed_deliveries:
  description: Number of webhooks that were not delivered to.
  returned: always
  type: int
'''

import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_native  # noqa: E402
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError  # noqa: E402
from ansible.module_utils.urls import open_url  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils.notify import (  # noqa: E402
    build_payload,
    encode,
    redact_url,
)


def _scrub(text, url):
    return to_native(text).replace(url, redact_url(url))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            webhooks=dict(type='list', elements='dict', required=True, options=dict(
                url=dict(type='str', required=True, no_log=True),
                format=dict(type='str', default='generic', choices=['generic', 'slack', 'teams']),
                name=dict(type='str'),
            )),
            incident=dict(type='dict', required=True),
            timeout=dict(type='int', default=10),
            validate_certs=dict(type='bool', default=True),
            fail_on_error=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    deliveries = []
    for hook in p['webhooks']:
        url = hook['url']
        label = hook['name'] or redact_url(url)
        entry = dict(webhook=label, format=hook['format'], status=None, ok=False, error=None, sent_at=None)
        if not url.lower().startswith(('http://', 'https://')):
            entry['error'] = 'webhook %s: only http:// and https:// URLs are supported' % label
            deliveries.append(entry)
            continue
        if module.check_mode:
            entry['ok'] = True
            deliveries.append(entry)
            continue
        body = encode(build_payload(hook['format'], p['incident']))
        entry['sent_at'] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
        try:
            resp = open_url(url, data=body, method='POST', timeout=p['timeout'], validate_certs=p['validate_certs'],
                            headers={'Content-Type': 'application/json; charset=utf-8'}, follow_redirects='none')
            entry['status'] = resp.getcode()
            resp.read()
        except HTTPError as exc:
            entry['status'] = exc.code
            entry['error'] = 'HTTP %d' % exc.code
        except (URLError, OSError, ValueError) as exc:
            entry['error'] = _scrub(getattr(exc, 'reason', exc), url)
        entry['ok'] = entry['status'] is not None and 200 <= entry['status'] < 300
        deliveries.append(entry)

    failed = [d for d in deliveries if not d['ok']]
    result = dict(changed=bool(deliveries) and not module.check_mode and len(failed) < len(deliveries),
                  deliveries=deliveries, failed_deliveries=len(failed))
    if failed and p['fail_on_error']:
        module.fail_json(msg='incident notification failed for %s' % ', '.join(
            '%s (%s)' % (d['webhook'], d['error']) for d in failed), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
