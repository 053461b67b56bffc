#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: backup_restore
short_description: Restore a backup snapshot to its original paths or to an alternate root
version_added: 0.1.0
description:
  - Restores a snapshot made by M(itsop.change.backup_snapshot).
  - Before anything is written it re-hashes the archive and the manifest against the snapshot record (and checks
    the record's HMAC with O(record_key)), then reads every archive member with a strict tar reader and refuses
    the whole restore when a header could be read differently by another tar reader (GNU long names, several
    extended headers for one member, bad checksums, ...), when a member would land outside the target (absolute
    names, C(..), members below a symlink member, hard links to or through a symlink, parents, directories or
    hard-link targets that are symlinks in the target leading outside it), is a device node (unless
    O(allow_devices=true)) or does not match the manifest entry at its position. A refused restore writes
    nothing. M(itsop.change.backup_verify) applies the same member check.
  - Names that are not UTF-8 are returned escaped, with their bytes in RV(escaped_names).
  - Compares the manifest with what is on disk under O(root); when nothing differs nothing is written
    (C(changed=false)). Otherwise only the entries that differ (missing, or different type, mode, owner, size,
    content or symlink target) are extracted with GNU tar keeping owners (numeric ids), modes, symlinks, mtimes
    and extended attributes; entries that already match are not touched (files in use, bind mounts such as
    C(/etc/hostname) in a container).
  - Files that exist in the target but not in the snapshot are left alone.
author:
  - itsop.change engineers (@itsop)
options:
  root:
    description:
      - Directory the archived absolute paths are restored under. V(/) restores to the original paths.
      - An alternate root that does not exist is created with mode 0700.
    type: path
    default: /
  allow_devices:
    description:
      - Allow device nodes in the archive to be restored.
    type: bool
    default: false
  force:
    description:
      - Extract every entry of the snapshot, even those that already match the target (and even when nothing
        differs).
    type: bool
    default: false
  record_key:
    description:
      - The controller's record key (at least 32 characters, e.g. the output of C(openssl rand -hex 32)), normally
        read from a file on the controller by the M(itsop.change.backup) role (C(backup_record_key_file)).
      - When set, the snapshot record must carry a valid HMAC made with this key; a rewritten or unsigned record
        is refused before anything is written.
      - The key is never written to the result, the record, the archive or a log (C(no_log)).
    type: str
extends_documentation_fragment:
  - itsop.change.attributes
  - itsop.change.snapshot_selector
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: Checks hashes and members and reports what would be created or modified.
  diff_mode:
    support: full
    details: Lists the entries that would change and why (type, mode, owner, size, content, symlink target).
  platform:
    details: Needs GNU tar and the decompressor of the archive.
seealso:
  - module: itsop.change.backup_snapshot
  - module: itsop.change.backup_verify
'''

EXAMPLES = r'''
- name: Show what a rollback of /etc would change
  itsop.change.backup_restore:
    dest: /var/backups/itsop
    label: CHG-2025-001
  check_mode: true
  diff: true

- name: Restore the snapshot to an alternate root for inspection
  itsop.change.backup_restore:
    snapshot_path: "{{ snapshot.snapshot_dir }}"
    root: /var/tmp/restore-CHG-2025-001
'''

RETURN = r'''
escaped_names:
  description:
    - Present when a returned string held bytes that are not UTF-8 (a file name, usually). Such a string is
      returned in an escaped form (each byte that is not UTF-8 as C(\\xNN)); this list gives, per escaped form,
      the original bytes in base64, so the exact name is never lost.
  returned: when a name was not UTF-8
  type: list
  elements: dict
  sample: [{escaped: "/etc/app/bad-\\xff-name", base64: "L2V0Yy9hcHAvYmFkLf8tbmFtZQ=="}]
record_authenticated:
  description: The snapshot record's HMAC was checked with O(record_key) and matched (false when no key was given).
  returned: success
  type: bool
record_signed:
  description: The snapshot record carries an HMAC signature.
  returned: success
  type: bool
sparse_files:
  description: Files of the snapshot that were sparse (had holes) on the source.
  returned: success
  type: int
sparse_restored:
  description:
    - Restored sparse files made sparse again with C(fallocate --dig-holes) (zero ranges deallocated; content and
      mtime unchanged). Sparse files beyond the first 1000 of a snapshot, or on a host without C(fallocate), are
      restored fully allocated, which RV(notes) says.
  returned: success
  type: int
notes:
  description: Remarks on how sparse files were restored.
  returned: when the snapshot holds sparse files and something was (or would be) restored
  type: list
  elements: str
snapshot_id:
  description: Id of the snapshot restored.
  returned: success
  type: str
snapshot_dir:
  description: Directory of the snapshot.
  returned: success
  type: str
root:
  description: The target root.
  returned: success
  type: str
archive_sha256:
  description: SHA-256 of the archive, checked before the restore.
  returned: success
  type: str
archive_ok:
  description: Archive and manifest hashes matched the record (the module fails otherwise).
  returned: success
  type: bool
members_checked:
  description: Archive members checked for safety and against the manifest.
  returned: success
  type: int
counts:
  description: Entries to create (missing), modify (differing) and unchanged.
  returned: success
  type: dict
  sample: {create: 1, modify: 2, unchanged: 830}
created:
  description: Paths that were (or in check mode would be) created, up to 1000.
  returned: success
  type: list
  elements: str
modified:
  description: Entries that were (or would be) changed back, up to 1000, each with C(path) and C(problems).
  returned: success
  type: list
  elements: dict
restored:
  description: Whether the archive was extracted.
  returned: success
  type: bool
duration:
  description: Seconds the module took.
  returned: success
  type: float
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._backup.names import safe_result  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._backup.restore import restore_snapshot  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._backup.selector import (  # noqa: E402
    selected_snapshot, selector_rules, selector_spec)


def main():
    argument_spec = selector_spec()
    argument_spec.update(
        root=dict(type='path', default='/'),
        allow_devices=dict(type='bool', default=False),
        force=dict(type='bool', default=False),
        record_key=dict(type='str', no_log=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, **selector_rules())
    p = module.params
    try:
        path = selected_snapshot(p)
        changed, result = restore_snapshot(path, root=p['root'], allow_devices=p['allow_devices'],
                                           check_mode=module.check_mode, force=p['force'],
                                           record_key=p['record_key'])
    except BackupError as exc:
        module.fail_json(**safe_result(dict(exc.details, msg=exc.msg)))
    except (OSError, IOError) as exc:
        module.fail_json(**safe_result({'msg': 'restore to %s failed: %s' % (p['root'], exc)}))
    diff = result.pop('diff')
    if module._diff and changed:
        result['diff'] = diff
    module.exit_json(**safe_result(dict(result, changed=changed)))


if __name__ == '__main__':
    main()
