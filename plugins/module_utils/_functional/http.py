# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""An HTTP check: one GET of the URL from the host itself, its status, latency and (when asked) its body.

Like health_watch's sampler (``_health/samplers.py``): redirects are not followed (the status is the one the
URL answers) and the latency is measured up to the end of the body. Unlike it, the body is kept (up to
``MAX_BODY`` bytes) for ``body_contains``, so one request serves status, latency and content."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json
import time

from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

MAX_BODY = 1024 * 1024


def fetch(url, timeout, validate_certs):
    """GET ``url``: (status or None, body text, latency in ms, error or None)."""
    start = time.monotonic()
    status = None
    error = None
    body = b''
    try:
        resp = open_url(url, method='GET', timeout=timeout, validate_certs=validate_certs,
                        follow_redirects='none')
        status = resp.getcode()
        body = resp.read(MAX_BODY)
    except HTTPError as exc:
        status = exc.code
        try:
            body = exc.read(MAX_BODY) or b''
        except (OSError, ValueError, AttributeError):
            body = b''
    except (URLError, OSError, ValueError) as exc:
        error = to_native(getattr(exc, 'reason', exc))
    latency = round((time.monotonic() - start) * 1000.0, 2)
    return status, to_text(body, errors='surrogate_or_replace'), latency, error


def http_check(check, timeout, validate_certs):
    status, body, latency, error = fetch(check['url'], timeout, validate_certs)
    want_body = check.get('body_contains')
    max_latency = check.get('max_latency_ms')
    status_ok = status == check['status']
    latency_ok = max_latency is None or latency <= max_latency
    body_ok = want_body is None or (status is not None and want_body in body)
    parts = ['status %s (expected %d)' % ('none' if status is None else status, check['status']),
             '%s ms' % latency + (' (max %s ms)' % max_latency if max_latency is not None else '')]
    if want_body is not None:
        parts.append('body %s %s' % ('contains' if body_ok else 'does not contain', json.dumps(want_body)))
    if error:
        parts.append('error %s' % error)
    return dict(
        passed=status_ok and latency_ok and body_ok,
        expected=dict(status=check['status'], max_latency_ms=max_latency, body_contains=want_body),
        actual=dict(status=status, latency_ms=latency, error=error,
                    body_contains=body_ok if want_body is not None else None),
        message=', '.join(parts),
    )
