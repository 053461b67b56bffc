# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cliconf plugin for FRRouting's vtysh: the platform layer that makes the neutral roles work on FRR."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
author: itsop.change engineers (@itsop)
name: frr
short_description: Cliconf plugin for FRRouting (vtysh) devices
description:
  - Gives M(ansible.netcommon.cli_command) and M(ansible.netcommon.cli_config) what they need on an
    FRRouting 8 router whose operator account logs in to vtysh, with
    C(ansible_connection=ansible.netcommon.network_cli) and C(ansible_network_os=itsop.change.frr).
  - The running configuration is read with C(show running-config); candidate lines are compared with
    it hierarchically (one space of indentation per level, as vtysh prints it), so only missing lines
    are sent, a second apply changes nothing, and check mode and diff show the lines that would be
    sent.
  - C(router bgp) without a number stands for the router's only BGP instance (as in vtysh), so one
    change can carry the same lines to routers of different autonomous systems.
  - Lines are sent in C(configure terminal); an indented line is sent inside the block of the line
    above it and the plugin leaves blocks with C(exit) when the indentation goes back. The plugin
    never writes the startup configuration (C(write memory)); the roles of this collection do that
    only once a change is confirmed.
  - vtysh has no configuration replace, commit or rollback of its own, so the plugin reports
    C(supports_replace), C(supports_commit) and C(supports_rollback) as false; the collection's
    network roles restore a saved configuration and arm the revert timer on the device's Linux side
    (see the collection's C(docs/network.md)).
version_added: 1.1.0
'''

import json  # noqa: E402
import re  # noqa: E402

from ansible.errors import AnsibleConnectionFailure  # noqa: E402
from ansible.module_utils.common.text.converters import to_text  # noqa: E402
from ansible_collections.ansible.netcommon.plugins.module_utils.network.common.config import (  # noqa: E402
    NetworkConfig,
    dumps,
)
from ansible_collections.ansible.netcommon.plugins.module_utils.network.common.utils import to_list  # noqa: E402
from ansible_collections.ansible.netcommon.plugins.plugin_utils.cliconf_base import CliconfBase  # noqa: E402

# Lines vtysh prints around the configuration that are not configuration.
_NOT_CONFIG = [
    r"^Building configuration\.\.\.$",
    r"^Current configuration:$",
    r"^frr version ",
    r"^end$",
    r"^exit$",
    r"^exit-address-family$",
    r"^exit-vrf$",
    r"^exit-vnc$",
]
_VERSION_RE = re.compile(r"^FRRouting (\S+) \((\S+)\)", re.M)


_BGP_RE = re.compile(r"^router bgp (\d+)$", re.M)


def _bgp_instance(candidate, running):
    """vtysh takes "router bgp" without a number for the router's one BGP instance; write the
    number in, so that the candidate's lines compare with the running configuration's block."""
    if not isinstance(candidate, str) or not running:
        return candidate
    instances = _BGP_RE.findall(running)
    if len(instances) != 1:
        return candidate
    return re.sub(r"(?m)^router bgp[ \t]*$", "router bgp %s" % instances[0], candidate)


class Cliconf(CliconfBase):
    def __init__(self, *args, **kwargs):
        super(Cliconf, self).__init__(*args, **kwargs)
        self._device_info = {}

    def get_device_info(self):
        if not self._device_info:
            info = {"network_os": "frr"}
            reply = to_text(self.get("show version"), errors="surrogate_or_strict")
            match = _VERSION_RE.search(reply)
            if match:
                info["network_os_version"] = match.group(1)
                info["network_os_hostname"] = match.group(2)
            self._device_info = info
        return self._device_info

    def get_config(self, source="running", flags=None, format=None):
        if source != "running":
            raise ValueError("FRR's vtysh shows only the running configuration (source=running); the "
                             "startup configuration is the file /etc/frr/frr.conf on the device")
        if format not in (None, "text"):
            raise ValueError("FRR's vtysh prints configuration as text only (format=%s)" % format)
        if flags:
            raise ValueError("FRR's vtysh takes no flags for show running-config")
        return self.send_command("show running-config")

    def edit_config(self, candidate=None, commit=True, replace=None, comment=None):
        operations = self.get_device_operations()
        self.check_edit_config_capability(operations, candidate, commit, replace, comment)
        if not commit:
            raise ValueError("check mode is answered by get_diff; edit_config always applies")
        requests, results = [], []
        self.send_command("configure terminal")
        lines = []
        for line in to_list(candidate):
            text = (line["command"] if isinstance(line, dict) else line).rstrip()
            stripped = text.lstrip(" ")
            if stripped and not stripped.startswith("!") and stripped != "end":
                lines.append((len(text) - len(stripped), stripped, text))
        # depth = blocks entered; a line enters a block only when the next line is indented deeper
        # (vtysh runs a line its current block does not know in the enclosing one, like IOS)
        depth = 0
        try:
            for index, (indent, stripped, text) in enumerate(lines):
                while depth > indent:
                    self.send_command("exit")
                    depth -= 1
                results.append(self.send_command(stripped))
                requests.append(text)
                if index + 1 < len(lines) and lines[index + 1][0] > indent:
                    depth = indent + 1
        finally:
            self.send_command("end")
        return {"request": requests, "response": results}

    def get(self, command=None, prompt=None, answer=None, sendonly=False, newline=True,
            output=None, check_all=False):
        if not command:
            raise ValueError("must provide value of command to execute")
        if output:
            raise ValueError("'output' value %s is not supported for get" % output)
        return self.send_command(command=command, prompt=prompt, answer=answer,
                                 sendonly=sendonly, newline=newline, check_all=check_all)

    def get_diff(self, candidate=None, running=None, diff_match="line", diff_ignore_lines=None,
                 path=None, diff_replace="line"):
        options = self.get_option_values()
        if candidate is None:
            raise ValueError("candidate configuration is required to generate diff")
        if diff_match not in options["diff_match"]:
            raise ValueError("'match' value %s is invalid, valid values are %s"
                             % (diff_match, ", ".join(options["diff_match"])))
        if diff_replace not in options["diff_replace"]:
            raise ValueError("'replace' value %s is invalid, valid values are %s"
                             % (diff_replace, ", ".join(options["diff_replace"])))
        candidate = _bgp_instance(candidate, running)
        ignore = list(_NOT_CONFIG) + list(diff_ignore_lines or [])
        want = NetworkConfig(indent=1, ignore_lines=ignore)
        want.load(candidate)
        if running and diff_match != "none":
            have = NetworkConfig(indent=1, contents=running, ignore_lines=ignore)
            objects = want.difference(have, path=path, match=diff_match, replace=diff_replace)
        else:
            objects = want.items
        # "raw" keeps the indentation that edit_config uses to enter and leave blocks
        return {"config_diff": dumps(objects, "raw") if objects else "", "banner_diff": {}}

    def run_commands(self, commands=None, check_rc=True):
        if commands is None:
            raise ValueError("'commands' value is required")
        responses = []
        for cmd in to_list(commands):
            if not isinstance(cmd, dict):
                cmd = {"command": cmd}
            output = cmd.pop("output", None)
            if output not in (None, "text", "json"):
                raise ValueError("'output' value %s is not supported for run_commands" % output)
            if output == "json" and not cmd["command"].endswith(" json"):
                cmd["command"] += " json"
            try:
                out = self.send_command(**cmd)
            except AnsibleConnectionFailure as exc:
                if check_rc:
                    raise
                out = getattr(exc, "err", to_text(exc))
            if output == "json":
                try:
                    out = json.loads(out)
                except ValueError:
                    raise ValueError("%s did not return JSON: %s" % (cmd["command"], out[:200])) from None
            responses.append(out)
        return responses

    def get_device_operations(self):
        return {
            "supports_diff_replace": True,
            "supports_commit": False,
            "supports_rollback": False,
            "supports_defaults": False,
            "supports_onbox_diff": False,
            "supports_commit_comment": False,
            "supports_multiline_delimiter": False,
            "supports_diff_match": True,
            "supports_diff_ignore_lines": True,
            "supports_generate_diff": True,
            "supports_replace": False,
        }

    def get_option_values(self):
        return {
            "format": ["text"],
            "diff_match": ["line", "strict", "exact", "none"],
            "diff_replace": ["line", "block"],
            "output": ["text", "json"],
        }

    def get_capabilities(self):
        result = super(Cliconf, self).get_capabilities()
        result["rpc"] += ["get_diff", "run_commands", "get_option_values"]
        result["device_operations"] = self.get_device_operations()
        result.update(self.get_option_values())
        return json.dumps(result)
