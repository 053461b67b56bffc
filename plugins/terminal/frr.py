# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Terminal plugin for FRRouting's vtysh reached over SSH (the operator's login shell is vtysh)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
author: itsop.change engineers (@itsop)
name: frr
short_description: Terminal plugin for FRRouting vtysh over SSH
description:
  - Recognises the vtysh prompts (C(hostname#), C(hostname(config)#), C(hostname(config-router)#) and
    so on) and the C(%) error lines of FRRouting 8, so that M(ansible.netcommon.cli_command) and
    M(ansible.netcommon.cli_config) work with C(ansible_connection=ansible.netcommon.network_cli)
    and C(ansible_network_os=itsop.change.frr).
  - The SSH account must have C(/usr/bin/vtysh) as its login shell (listed in C(/etc/shells)) and be
    in the groups C(frrvty) and C(frr).
version_added: 1.1.0
'''

import re  # noqa: E402

from ansible.errors import AnsibleConnectionFailure  # noqa: E402
from ansible_collections.ansible.netcommon.plugins.plugin_utils.terminal_base import TerminalBase  # noqa: E402


class TerminalModule(TerminalBase):
    # "r1#", "r1(config)#", "r1(config-router-af)#"; vtysh has no unprivileged ">" mode.
    terminal_stdout_re = [  # noqa: RUF012 (TerminalBase reads class attributes)
        re.compile(br"[\r\n]?[\w+\-\.:\/\[\]]+(?:\([^\)]+\)){0,3}# ?$"),
    ]

    # vtysh reports every refused command on a line starting with "% " (unknown, incomplete or
    # ambiguous commands, malformed values, "% Specify remote-as ...", "% Configuration failed").
    terminal_stderr_re = [  # noqa: RUF012
        re.compile(br"(?:^|[\r\n])% ?(?:Unknown command|Command incomplete|Ambiguous command|"
                   br"Malformed|Invalid|There is no|Specify|Can't|Cannot|Configuration failed|"
                   br"Create the peer-group|Please specify|No such)[^\r\n]*"),
        re.compile(br"(?:^|[\r\n])line \d+: % [^\r\n]*"),
    ]

    terminal_config_prompt = re.compile(r"^.+\(config[^\)]*\)# ?$")

    def on_open_shell(self):
        try:
            self._exec_cli_command(b"terminal length 0")
        except AnsibleConnectionFailure:
            raise AnsibleConnectionFailure("unable to set the terminal length (is the login shell vtysh?)") from None
