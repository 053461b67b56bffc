# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A command check: run an argument list (no shell; read-only by contract of the test plan, so it runs in
check mode too) and compare its return code and, when asked, its standard output."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json

from ansible.module_utils.common.text.converters import to_native

KEEP = 2000  # characters of stdout/stderr kept in the result


def command_check(host, check):
    argv = check['command']
    want_out = check.get('stdout_contains')
    error = None
    try:
        rc, out, err = host.run_command(argv, handle_exceptions=False)
    except (OSError, IOError) as exc:
        rc, out, err = None, '', ''
        error = to_native(exc)
    rc_ok = rc == check['rc']
    out_ok = want_out is None or want_out in (out or '')
    parts = ['rc %s (expected %d)' % ('none' if rc is None else rc, check['rc'])]
    if want_out is not None:
        parts.append('stdout %s %s' % ('contains' if out_ok else 'does not contain', json.dumps(want_out)))
    if error:
        parts.append('error %s' % error)
    return dict(
        passed=rc_ok and out_ok,
        expected=dict(rc=check['rc'], stdout_contains=want_out),
        actual=dict(rc=rc, stdout=(out or '')[:KEEP], stderr=(err or '')[:KEEP], error=error),
        message=', '.join(parts),
    )
