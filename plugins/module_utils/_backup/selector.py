# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The snapshot selector of backup_verify and backup_restore: its argument spec and its resolution."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os

from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError
from ansible_collections.itsop.change.plugins.module_utils._backup.layout import RECORD_NAME, validate_label
from ansible_collections.itsop.change.plugins.module_utils._backup.record import load_record, snapshot_dirs


def selector_spec():
    """The selector options as an argument spec (a new dict per call; a module adds its own options to it).

    Documented once, in the doc fragment ``itsop.change.snapshot_selector``.
    """
    return dict(
        snapshot_path=dict(type='path'),
        dest=dict(type='path'),
        label=dict(type='str'),
        snapshot_id=dict(type='str'),
    )


def selector_rules():
    """The selector's rules, as AnsibleModule keyword arguments: a path, or dest with label (and an optional id)."""
    return dict(
        mutually_exclusive=[('snapshot_path', 'dest'), ('snapshot_path', 'label'), ('snapshot_path', 'snapshot_id')],
        required_one_of=[('snapshot_path', 'dest')],
        required_together=[('dest', 'label')],
    )


def selected_snapshot(params):
    """The snapshot directory the selector options in ``params`` (module.params) name."""
    return find_snapshot(params['dest'], params['label'], params['snapshot_id'], params['snapshot_path'])


def find_snapshot(dest=None, label=None, snapshot_id=None, snapshot_path=None):
    """Resolve a snapshot directory from a path, or from dest/label (+ id, default newest)."""
    if snapshot_path:
        if not os.path.isdir(snapshot_path):
            raise BackupError('snapshot directory %s does not exist' % snapshot_path)
        return os.path.normpath(snapshot_path)
    validate_label(label)
    if snapshot_id:
        if '/' in snapshot_id or snapshot_id.startswith('.'):
            raise BackupError('snapshot_id %r is not valid' % snapshot_id)
        path = os.path.join(dest, label, snapshot_id)
        if not os.path.lexists(os.path.join(path, RECORD_NAME)):
            raise BackupError('no complete snapshot %s for label %s under %s' % (snapshot_id, label, dest))
        found = load_record(path).get('label')
        if found != label:
            raise BackupError('snapshot %s under %s/%s records the label %r; refusing it' % (
                snapshot_id, dest, label, found))
        return path
    found = snapshot_dirs(dest, label)
    if not found:
        raise BackupError('no complete snapshot for label %s under %s' % (label, dest))
    return found[-1][1]
