# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The snapshot selector of backup_verify and backup_restore: a snapshot directory, or dest + label (+ id)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The argument spec and its rules live once in module_utils/_backup/selector.py
    # (selector_spec, selector_rules); keep the two in step.
    DOCUMENTATION = r'''
options:
  snapshot_path:
    description:
      - Snapshot directory (RV(itsop.change.backup_snapshot#module:snapshot_dir)).
      - Mutually exclusive with O(dest), O(label) and O(snapshot_id); one of O(snapshot_path) and O(dest) is required.
    type: path
  dest:
    description:
      - Backup directory the snapshot was written to; use with O(label) and optionally O(snapshot_id).
    type: path
  label:
    description:
      - Label of the snapshot. Required with O(dest).
    type: str
  snapshot_id:
    description:
      - Snapshot id; the newest complete snapshot of O(label) when omitted.
    type: str
'''
