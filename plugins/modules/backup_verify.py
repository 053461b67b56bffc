#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: backup_verify
short_description: Prove a backup snapshot restorable (re-hash, test-extract, compare with the manifest)
version_added: 0.1.0
description:
  - Re-hashes the archive, manifest and package state of a snapshot made by M(itsop.change.backup_snapshot)
    and compares them with the snapshot record.
  - At the same time extracts the archive with GNU tar into a fresh private temporary directory (the restore
    test). When a hash does not match, that is the verdict and the extracted tree is discarded unchecked.
    Otherwise every extracted entry is compared with the manifest (type, mode, owner and group when run as root, size,
    SHA-256, mtime of files, symlink targets). Missing and unexpected entries fail the test.
  - On its way to GNU tar the archive passes the member check M(itsop.change.backup_restore) uses (a strict tar
    reader and one manifest entry per member, in order); each chunk is checked before tar gets it, so verify
    fails every archive a restore would refuse, with the same message (RV(members_checked)).
  - Names that are not UTF-8 are returned escaped, with their bytes in RV(escaped_names).
  - Writes the verdict to C(verify.json) in the snapshot directory (used by M(itsop.change.backup_prune) to
    protect the newest verified snapshot). The verdict is also returned and the module fails when it is not
    V(passed), unless O(fail_on_mismatch=false).
author:
  - itsop.change engineers (@itsop)
options:
  tmpdir:
    description:
      - Where to create the temporary extraction directory (mode 0700, removed afterwards).
      - By default C(/dev/shm) when it is a writable tmpfs with room for the tree and the tree needs less than a
        quarter of the available memory (creating many small files is much faster there), else the snapshot
        directory. The place used is returned as RV(temp_base).
    type: path
  keep_temp:
    description:
      - Keep the extracted tree (its path is returned as RV(temp_dir)). For debugging.
    type: bool
    default: false
  record:
    description:
      - Write the verdict to C(verify.json) in the snapshot directory.
    type: bool
    default: true
  fail_on_mismatch:
    description:
      - Fail the task when the verdict is not V(passed).
    type: bool
    default: true
  record_key:
    description:
      - The controller's record key (at least 32 characters, e.g. the output of C(openssl rand -hex 32)), normally
        read from a file on the controller by the M(itsop.change.backup) role (C(backup_record_key_file)).
      - When set, the snapshot record must carry a valid HMAC made with this key. A record that was rewritten (for
        example with new hashes for a changed archive) or that is not signed fails the module before anything is
        compared.
      - The key is never written to the result, the record, the archive or a log (C(no_log)).
    type: str
extends_documentation_fragment:
  - itsop.change.attributes
  - itsop.change.snapshot_selector
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: The restore test runs in check mode too (it only writes to a temporary directory it removes); the
      verdict record is not written.
  platform:
    details: Needs GNU tar and the decompressor used for the archive (zstd, gzip or pigz).
seealso:
  - module: itsop.change.backup_snapshot
'''

EXAMPLES = r'''
- name: Restore-test the snapshot just made
  itsop.change.backup_verify:
    snapshot_path: "{{ snapshot.snapshot_dir }}"
  register: verify

- name: Verify the newest snapshot of a change
  itsop.change.backup_verify:
    dest: /var/backups/itsop
    label: CHG-2025-001
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
members_checked:
  description:
    - Archive members read by the same member check a restore uses (strict tar reader, one member per manifest
      entry in the same order, same type and link targets, nothing below a symlink member); an archive a restore
      would refuse fails verification.
  returned: always
  type: int
verdict:
  description: V(passed) or V(failed).
  returned: always
  type: str
  sample: passed
passed:
  description: True when the verdict is V(passed).
  returned: always
  type: bool
failures:
  description: Why the verification failed (empty when it passed).
  returned: always
  type: list
  elements: str
snapshot_id:
  description: Id of the snapshot verified.
  returned: always
  type: str
snapshot_dir:
  description: Directory of the snapshot verified.
  returned: always
  type: str
archive_sha256:
  description: SHA-256 recorded for the archive.
  returned: always
  type: str
archive_ok:
  description: The archive's SHA-256 equals the recorded one.
  returned: always
  type: bool
manifest_ok:
  description: The manifest's SHA-256 equals the recorded one.
  returned: always
  type: bool
packages_ok:
  description: The package state's SHA-256 equals the recorded one (null when there is none).
  returned: always
  type: bool
extract_ok:
  description: The test extraction succeeded.
  returned: always
  type: bool
entries_expected:
  description: Entries the snapshot record lists.
  returned: always
  type: int
entries_compared:
  description: Entries found after extraction and compared with the manifest.
  returned: always
  type: int
files_hashed:
  description: Regular files re-hashed after extraction.
  returned: always
  type: int
mismatch_count:
  description: Entries that differ from the manifest.
  returned: always
  type: int
missing_count:
  description: Manifest entries missing after extraction.
  returned: always
  type: int
extra_count:
  description: Extracted entries that the manifest does not list.
  returned: always
  type: int
mismatches:
  description: Up to 50 differing entries, each with C(path) and a list of C(problems).
  returned: always
  type: list
  elements: dict
owner_checked:
  description: Whether owner and group were compared (only when running as root).
  returned: always
  type: bool
hashes:
  description: Per snapshot file (archive, manifest, packages) the path, recorded and actual SHA-256 and C(ok).
  returned: always
  type: dict
started:
  description: UTC ISO-8601 start time.
  returned: always
  type: str
finished:
  description: UTC ISO-8601 end time.
  returned: always
  type: str
duration:
  description: Seconds the verification took.
  returned: always
  type: float
record_path:
  description: Path of C(verify.json).
  returned: when O(record=true)
  type: str
temp_base:
  description: Directory in which the temporary extraction directory was created.
  returned: when the restore test ran
  type: str
temp_dir:
  description: The kept extraction directory (only with O(keep_temp=true)).
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._backup.names import safe_result  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._backup.selector import (  # noqa: E402
    selected_snapshot, selector_rules, selector_spec)
from ansible_collections.itsop.change.plugins.module_utils._backup.verify import verify_snapshot  # noqa: E402


def main():
    argument_spec = selector_spec()
    argument_spec.update(
        tmpdir=dict(type='path'),
        keep_temp=dict(type='bool', default=False),
        record=dict(type='bool', default=True),
        fail_on_mismatch=dict(type='bool', default=True),
        record_key=dict(type='str', no_log=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, **selector_rules())
    p = module.params
    try:
        path = selected_snapshot(p)
        changed, result = verify_snapshot(path, tmpdir=p['tmpdir'], keep_temp=p['keep_temp'],
                                          record_result=p['record'], check_mode=module.check_mode,
                                          record_key=p['record_key'])
    except BackupError as exc:
        module.fail_json(**safe_result(dict(exc.details, msg=exc.msg)))
    except (OSError, IOError) as exc:
        module.fail_json(msg='verification failed: %s' % exc)
    if not result['passed'] and p['fail_on_mismatch']:
        module.fail_json(**safe_result(dict(
            result, changed=changed, msg='snapshot %s failed verification: %s' % (
                result['snapshot_id'], '; '.join(result['failures'][:5])))))
    module.exit_json(**safe_result(dict(result, changed=changed)))


if __name__ == '__main__':
    main()
