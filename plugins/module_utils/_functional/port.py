# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A port check: does ``host:port`` accept a TCP connection within ``timeout`` seconds (like wait_for's
``state: started``: connection attempts until one succeeds or the time is up)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import socket
import time

from ansible.module_utils.common.text.converters import to_native

POLL = 0.5


def connects(host, port, timeout):
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except (OSError, socket.error) as exc:
        return to_native(exc)
    sock.close()
    return None


def port_check(check, timeout):
    host, port = check['host'], check['port']
    start = time.monotonic()
    deadline = start + timeout
    while True:
        error = connects(host, port, max(0.1, min(deadline - time.monotonic(), 5.0)))
        remaining = deadline - time.monotonic()
        if error is None or remaining <= 0:
            break
        time.sleep(min(POLL, remaining))
    elapsed = round(time.monotonic() - start, 2)
    if error is None:
        message = 'port %s:%d accepts connections' % (host, port)
    else:
        message = 'port %s:%d does not accept connections after %s s (%s)' % (host, port, elapsed, error)
    return dict(
        passed=error is None,
        expected=dict(host=host, port=port, state='listening'),
        actual=dict(elapsed_s=elapsed, error=error),
        message=message,
    )
