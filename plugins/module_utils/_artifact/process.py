# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Running the verification tools (gpg, gpgconf, clamscan, clamdscan) without a shell.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import subprocess


def run_command(args, data=None, env=None, timeout=None, stdin=None):
    """Run a command without a shell in the C locale; returns ``(rc, stdout, stderr)``.

    ``data`` (bytes) or ``stdin`` (an open descriptor) is the program's standard input; without
    either it reads from /dev/null.
    """
    run_env = dict(os.environ)
    run_env.update({'LC_ALL': 'C', 'LANG': 'C'})
    run_env.update(env or {})
    if data is not None:
        kwargs = {'input': data}
    else:
        kwargs = {'stdin': stdin if stdin is not None else subprocess.DEVNULL}
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=run_env, timeout=timeout, check=False, **kwargs)
    return (proc.returncode, proc.stdout.decode('utf-8', 'replace'),
            proc.stderr.decode('utf-8', 'replace'))
