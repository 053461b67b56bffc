# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Incident notification payloads (generic JSON, Slack, Microsoft Teams) and URL redaction.

Standard library only. Webhook URLs usually carry a token in the path or query, so they are
secrets: :func:`redact_url` keeps only the scheme, host and port for results and messages.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import json

from ansible.module_utils.six.moves.urllib.parse import urlsplit

FORMATS = ('generic', 'slack', 'teams')
_SEVERITY_COLOURS = {'critical': 'B00020', 'high': 'D9480F', 'medium': 'F2C94C', 'low': '2F80ED', 'info': '828282'}


def redact_url(url):
    """``https://hooks.example.com/services/T0/B0/xyz?token=1`` -> ``https://hooks.example.com/<redacted>``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or '?'
        if parts.port:
            host = '%s:%d' % (host, parts.port)
        return '%s://%s/<redacted>' % (parts.scheme or '?', host)
    except ValueError:
        return '<redacted>'


def _lines(incident):
    out = []
    for breach in incident.get('breaches') or []:
        text = breach.get('message') or breach.get('metric')
        if breach.get('first_seen'):
            text += ' (first seen %s)' % breach['first_seen']
        out.append(text)
    return out


def _headline(incident):
    return '[%s] %s %s: %s on %s' % (
        str(incident.get('severity', 'high')).upper(), incident.get('change_id') or '-',
        incident.get('id') or 'incident', incident.get('what') or 'health breach', incident.get('host') or '?')


def generic_payload(incident):
    """The incident as plain JSON (``{"type": "itsop.change/incident", "incident": {...}}``)."""
    return {'type': 'itsop.change/incident', 'version': 1, 'text': _headline(incident), 'incident': incident}


def slack_payload(incident):
    """Slack incoming-webhook payload: ``text`` plus ``blocks`` (header, fields, breach list)."""
    fields = [
        {'type': 'mrkdwn', 'text': '*Change:*\n%s' % (incident.get('change_id') or '-')},
        {'type': 'mrkdwn', 'text': '*Host:*\n%s' % (incident.get('host') or '-')},
        {'type': 'mrkdwn', 'text': '*When (UTC):*\n%s' % (incident.get('detected_at') or '-')},
        {'type': 'mrkdwn', 'text': '*Action:*\n%s' % (incident.get('action') or '-')},
    ]
    blocks = [
        {'type': 'header', 'text': {'type': 'plain_text', 'text': _headline(incident)[:150]}},
        {'type': 'section', 'fields': fields},
    ]
    lines = _lines(incident)
    if lines:
        text = '\n'.join('- ' + x for x in lines)[:2900]
        blocks.append({'type': 'section', 'text': {'type': 'mrkdwn', 'text': text}})
    if incident.get('evidence'):
        blocks.append({'type': 'context', 'elements': [
            {'type': 'mrkdwn', 'text': 'Evidence: %s' % incident['evidence']}]})
    return {'text': _headline(incident), 'blocks': blocks}


def teams_payload(incident):
    """Microsoft Teams payload (Office 365 connector MessageCard)."""
    facts = [
        {'name': 'Change', 'value': incident.get('change_id') or '-'},
        {'name': 'Host', 'value': incident.get('host') or '-'},
        {'name': 'When (UTC)', 'value': incident.get('detected_at') or '-'},
        {'name': 'Action', 'value': incident.get('action') or '-'},
    ]
    if incident.get('evidence'):
        facts.append({'name': 'Evidence', 'value': str(incident['evidence'])})
    return {
        '@type': 'MessageCard',
        '@context': 'https://schema.org/extensions',
        'summary': _headline(incident)[:200],
        'themeColor': _SEVERITY_COLOURS.get(str(incident.get('severity', 'high')), 'D9480F'),
        'title': _headline(incident),
        'sections': [{'facts': facts, 'text': '<br>'.join(_lines(incident)) or None}],
    }


def build_payload(fmt, incident):
    if fmt == 'slack':
        return slack_payload(incident)
    if fmt == 'teams':
        return teams_payload(incident)
    if fmt == 'generic':
        return generic_payload(incident)
    raise ValueError('unknown webhook format %r (expected one of %s)' % (fmt, ', '.join(FORMATS)))


def encode(payload):
    return json.dumps(payload, sort_keys=True, default=str).encode('utf-8')
