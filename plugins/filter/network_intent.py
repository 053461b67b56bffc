# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.itsop.change.plugins.module_utils._network.intent import IntentError, render

DOCUMENTATION = r"""
name: network_intent
short_description: The intended configuration of one network device from a change request
version_added: 1.2.0
author: itsop.change engineers
description:
  - Returns C(items.network_config.lines) of a change request as they are, or renders
    C(items.network_config.template) for one device.
  - The template is change-request text, so it is rendered in Jinja's sandbox and nothing else - no
    Ansible lookup, filter plugin or controller file is within its reach; an undefined variable is an
    error, never an empty string; no expression may build a value larger than a million characters.
  - Its variables are C(items.network_config.vars) with the device's O(host_vars) (its inventory
    variable C(network_template_vars)) over them, and C(inventory_hostname).
  - Fails, naming the device and what is wrong, for an undefined variable, a template error, a
    rendered line holding a carriage return or a tab, a rendered line that sets a secret (password,
    secret, community, key), or a template that renders nothing for the device.
positional: host, host_vars
options:
  _input:
    description: C(items.network_config) of the change request (a mapping with C(lines) or C(template)).
    type: dict
    required: true
  host:
    description: The device (its inventory name), C(inventory_hostname) in the template.
    type: str
    required: true
  host_vars:
    description: The device's own template variables (C(network_template_vars) in the inventory).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: The configuration this device should get
  ansible.builtin.set_fact:
    intended: >-
      {{ change['items'].network_config | itsop.change.network_intent(inventory_hostname,
         network_template_vars | default({})) }}
"""

RETURN = r"""
_value:
  description: The configuration lines for the device (an empty string when O(_input) has neither).
  type: str
"""


def network_intent(item, host, host_vars=None):
    try:
        return render(dict(item) if hasattr(item, "items") else item, str(host),
                      dict(host_vars) if hasattr(host_vars, "items") else host_vars)
    except IntentError as exc:
        raise AnsibleFilterError("itsop.change.network_intent: %s" % exc) from None


class FilterModule(object):
    def filters(self):
        return {"network_intent": network_intent}
