#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: backup_prune
short_description: Apply retention to the backup snapshots of one label
version_added: 0.1.0
description:
  - Removes snapshots of O(label) under O(dest) that are older than O(keep_days) days or beyond the newest
    O(keep_copies) copies.
  - Never removes the newest snapshot whose C(verify.json) says V(passed) for its current archive hash (written
    by M(itsop.change.backup_verify)).
  - Also removes C(.incomplete-*) directories left by killed runs once they are older than
    O(incomplete_age_hours).
author:
  - itsop.change engineers (@itsop)
options:
  dest:
    description:
      - Backup directory.
    type: path
    required: true
  label:
    description:
      - Label whose snapshots are pruned.
    type: str
    required: true
  keep_days:
    description:
      - Remove snapshots older than this many days.
    type: int
  keep_copies:
    description:
      - Keep at most this many of the newest snapshots.
    type: int
  incomplete_age_hours:
    description:
      - Age after which leftover incomplete snapshot directories are removed.
    type: int
    default: 24
extends_documentation_fragment:
  - itsop.change.attributes
  - ansible.builtin.action_common_attributes
attributes:
  diff_mode:
    support: full
    details: Lists the snapshot ids removed.
seealso:
  - module: itsop.change.backup_snapshot
  - module: itsop.change.backup_verify
'''

EXAMPLES = r'''
- name: Keep the three newest snapshots of a change, and none older than 90 days
  itsop.change.backup_prune:
    dest: /var/backups/itsop
    label: CHG-2025-001
    keep_copies: 3
    keep_days: 90
'''

RETURN = r'''
removed:
  description: Snapshot ids removed (or that would be removed in check mode).
  returned: success
  type: list
  elements: str
kept:
  description: Snapshot ids kept.
  returned: success
  type: list
  elements: str
protected:
  description: Id of the newest verified snapshot, never removed (null when none is verified).
  returned: success
  type: str
removed_incomplete:
  description: Names of incomplete snapshot directories removed.
  returned: success
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._backup.prune import prune_snapshots  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type='path', required=True),
            label=dict(type='str', required=True),
            keep_days=dict(type='int'),
            keep_copies=dict(type='int'),
            incomplete_age_hours=dict(type='int', default=24),
        ),
        required_one_of=[('keep_days', 'keep_copies')],
        supports_check_mode=True,
    )
    p = module.params
    for key in ('keep_days', 'keep_copies'):
        if p[key] is not None and p[key] < 0:
            module.fail_json(msg='%s must be 0 or more, got %d' % (key, p[key]))
    try:
        changed, result = prune_snapshots(p['dest'], p['label'], keep_days=p['keep_days'],
                                          keep_copies=p['keep_copies'],
                                          incomplete_age_hours=p['incomplete_age_hours'],
                                          check_mode=module.check_mode)
    except BackupError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except (OSError, IOError) as exc:
        module.fail_json(msg='pruning %s/%s failed: %s' % (p['dest'], p['label'], exc))
    if module._diff and changed:
        result['diff'] = {'before': ''.join('%s\n' % s for s in result['removed'] + result['kept']),
                          'after': ''.join('%s\n' % s for s in result['kept'])}
    module.exit_json(changed=changed, **result)


if __name__ == '__main__':
    main()
