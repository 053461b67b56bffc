"""Webhook notifications: a gate waits, a stage failed, an incident was raised, a change completed.

Configured in ``SOPCTL_HOME/config.yml`` (``webhooks: [{url, events}]``). The body is JSON
``{"event", "change_id", "title", "text", "time", ...}``. A failing webhook never stops sopctl; it
is reported on stderr and in the audit log by *event name and webhook index only*: webhook URLs
often carry tokens and are never logged or printed. ``title`` and ``text`` are shown by a chat to
people: their control, bidi and invisible characters are made visible (:mod:`sopctl.textsafe`).
"""

from __future__ import annotations

import sys
from typing import Any

EVENTS = ("gate_waiting", "stage_failed", "incident", "change_completed", "refused")


def send(webhooks: list[dict[str, Any]], event: str, payload: dict[str, Any], timeout: float = 5.0
         ) -> list[dict[str, Any]]:
    """POST ``payload`` to every webhook subscribed to ``event``; return delivery results (no URLs)."""
    results = []
    wanted = [(i, h) for i, h in enumerate(webhooks) if event in (h.get("events") or EVENTS)]
    if not wanted:
        return results
    import requests

    from .textsafe import multi_line, one_line

    body = dict(payload, event=event)
    for key, clean in (("title", one_line), ("text", multi_line)):
        if isinstance(body.get(key), str):
            body[key] = clean(body[key])
    for index, hook in wanted:
        try:
            resp = requests.post(hook["url"], json=body, timeout=timeout)
            ok = 200 <= resp.status_code < 300
            results.append({"webhook": index, "event": event, "ok": ok, "status": resp.status_code})
        except requests.RequestException as exc:
            # the exception text may contain the URL: report only its class
            results.append({"webhook": index, "event": event, "ok": False, "error": type(exc).__name__})
        if not results[-1]["ok"]:
            print(f"sopctl: warning: webhook #{index} for {event} failed "
                  f"({results[-1].get('status') or results[-1].get('error')})", file=sys.stderr)
    return results
