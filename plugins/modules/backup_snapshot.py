#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: backup_snapshot
short_description: Create a verified-restorable backup snapshot (archive, manifest, package state)
version_added: 0.1.0
description:
  - Archives O(paths) on the managed host into one compressed tar archive under O(dest)/O(label)/SNAPSHOT_ID/,
    with a JSON Lines manifest (per entry path, type, mode, owner, group, size, mtime, SHA-256, symlink
    target) and a record of installed package versions (C(dpkg-query) or C(rpm)).
  - Every file is read once; the bytes that go into the archive are the bytes that are hashed into the
    manifest. With GNU tar on the host, GNU tar writes the archive from the module's list of names and the
    module hashes each member as the stream passes on to the compressor; without GNU tar the module writes the
    same POSIX tar stream itself. The archive is compressed with C(zstd -T0) when available, else with C(pigz)
    or C(gzip).
  - The snapshot is built in a hidden C(.incomplete-SNAPSHOT_ID) directory and renamed into place only when the
    archive, manifest, package state and the record C(snapshot.json) are complete and synced. A failed or
    killed run never leaves a snapshot that looks valid.
  - Refuses to start when the free space in O(dest) is below the uncompressed size estimate plus a margin.
  - Files are created with mode 0600 and directories with mode 0700.
  - Use M(itsop.change.backup_verify) to prove the snapshot restorable, M(itsop.change.backup_restore) to
    restore it and M(itsop.change.backup_prune) for retention.
author:
  - itsop.change engineers (@itsop)
options:
  paths:
    description:
      - Files and directories to back up, recursively. Overlapping paths are merged.
      - Ownership, modes, symlinks, hard links, FIFOs, device nodes and extended attributes (as pax
        C(SCHILY.xattr) records, text values only) are kept. Sockets are skipped with a warning.
    type: list
    elements: path
    required: true
  exclude:
    description:
      - Glob patterns to leave out. A pattern containing C(/) is matched against the absolute path (and excludes
        everything below a matching directory); a pattern without C(/) is matched against the entry name.
      - O(dest) is always excluded when it lies inside one of O(paths).
    type: list
    elements: str
    default: []
  dest:
    description:
      - Backup directory on the managed host. Snapshots go to O(dest)/O(label)/SNAPSHOT_ID/.
    type: path
    required: true
  label:
    description:
      - Label grouping snapshots, normally the change id (for example V(CHG-2025-001)).
      - 1 to 128 characters from C(A-Z a-z 0-9 . _ -), not starting with C(.) or C(-).
    type: str
    required: true
  compression:
    description:
      - V(auto) uses zstd when the C(zstd) command exists, else gzip.
    type: str
    choices: [auto, zstd, gzip, none]
    default: auto
  compression_level:
    description:
      - Compression level. Defaults to 3 for zstd and 6 for gzip.
    type: int
  package_state:
    description:
      - Record installed package names, architectures and versions in C(packages.json).
    type: bool
    default: true
  xattrs:
    description:
      - Archive extended attributes.
    type: bool
    default: true
  one_file_system:
    description:
      - Do not descend into directories on other file systems.
    type: bool
    default: false
  ignore_missing:
    description:
      - Skip paths that do not exist (listed in RV(missing_paths)) instead of failing.
    type: bool
    default: false
  space_check:
    description:
      - Refuse to start when free space is below the estimate plus the margin.
    type: bool
    default: true
  space_margin_percent:
    description:
      - Margin on top of the size estimate, in percent of the estimate.
    type: int
    default: 10
  space_margin_mb:
    description:
      - Margin on top of the size estimate, in MiB.
    type: int
    default: 64
  reuse_existing:
    description:
      - When a complete snapshot of O(label) with the same paths, exclusions and compression exists, return it
        unchanged instead of creating a new one (makes a role re-run idempotent).
    type: bool
    default: false
  fsync:
    description:
      - Flush archive, manifest and record to stable storage before the snapshot is published.
    type: bool
    default: true
  record_key:
    description:
      - The controller's record key (at least 32 characters, e.g. the output of C(openssl rand -hex 32)), normally
        read from a file on the controller by the M(itsop.change.backup) role (C(backup_record_key_file)).
      - When set, C(snapshot.json) is signed with HMAC-SHA256 over its whole content (which holds the SHA-256 of the
        archive, the manifest and the package state), so M(itsop.change.backup_verify) and
        M(itsop.change.backup_restore) given the same key detect a rewritten record. With O(reuse_existing=true) only
        a snapshot whose record carries a valid signature is re-used; a forged one fails the module.
      - The key is never written to the result, the record, the archive or a log (C(no_log)).
    type: str
extends_documentation_fragment:
  - itsop.change.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: Walks the paths and reports what would be backed up (entries, files, bytes) and the space check.
  platform:
    details: Uses GNU tar when present (any POSIX host otherwise); zstd, pigz or gzip on the host.
notes:
  - Run with root privileges to read every file; an unreadable file fails the snapshot with its name.
  - Archive member names are the absolute paths without the leading C(/).
seealso:
  - module: itsop.change.backup_verify
  - module: itsop.change.backup_restore
  - module: itsop.change.backup_prune
'''

EXAMPLES = r'''
- name: Back up /etc and the application before change CHG-2025-001
  itsop.change.backup_snapshot:
    paths:
      - /etc
      - /srv/app
    exclude:
      - '*.swp'
      - /srv/app/cache
    dest: /var/backups/itsop
    label: CHG-2025-001
  register: snapshot

- name: Show what would be backed up
  itsop.change.backup_snapshot:
    paths: [/etc]
    dest: /var/backups/itsop
    label: CHG-2025-001
  check_mode: true
  register: plan
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
record_authenticated:
  description: The record was signed with O(record_key) (or, when re-used, its signature was checked and matched).
  returned: success and not check mode
  type: bool
record_signed:
  description: The snapshot record carries an HMAC signature.
  returned: success and not check mode
  type: bool
sparse_files:
  description:
    - Files that were sparse (at least one unallocated page) when backed up. They are archived with their holes as
      zeros and a restore writes them fully allocated; a warning says so.
  returned: success and not check mode
  type: int
snapshot_id:
  description: Id of the snapshot (UTC timestamp plus random suffix). Null in check mode.
  returned: success
  type: str
  sample: 20250101T120000Z-1a2b3c4d
label:
  description: The label.
  returned: success
  type: str
  sample: CHG-2025-001
snapshot_dir:
  description: Directory holding the snapshot's files.
  returned: success and not check mode
  type: str
  sample: /var/backups/itsop/CHG-2025-001/20250101T120000Z-1a2b3c4d
record_path:
  description: Path of C(snapshot.json), the record with the hashes of all snapshot files.
  returned: success and not check mode
  type: str
archive_path:
  description: Path of the archive.
  returned: success and not check mode
  type: str
  sample: /var/backups/itsop/CHG-2025-001/20250101T120000Z-1a2b3c4d/archive.tar.zst
archive_sha256:
  description: SHA-256 of the archive file.
  returned: success and not check mode
  type: str
archive_size:
  description: Size of the archive in bytes.
  returned: success and not check mode
  type: int
compression:
  description: Compression used (V(zstd), V(gzip) or V(none)).
  returned: success
  type: str
manifest_path:
  description: Path of the JSON Lines manifest.
  returned: success and not check mode
  type: str
manifest_sha256:
  description: SHA-256 of the manifest.
  returned: success and not check mode
  type: str
package_state_path:
  description: Path of C(packages.json) (null when O(package_state=false)).
  returned: success and not check mode
  type: str
package_state_sha256:
  description: SHA-256 of C(packages.json).
  returned: success and not check mode
  type: str
package_manager:
  description: V(dpkg), V(rpm) or null when neither exists.
  returned: success and not check mode
  type: str
package_count:
  description: Number of installed packages recorded.
  returned: success and not check mode
  type: int
file_count:
  description: Number of regular files archived (hard links to an already archived file not counted).
  returned: success and not check mode
  type: int
entry_count:
  description: Number of manifest entries (files, directories, symlinks, hard links, special files).
  returned: success and not check mode
  type: int
bytes:
  description: Total size of the regular files archived (uncompressed).
  returned: success and not check mode
  type: int
totals:
  description: Counts per entry type and bytes.
  returned: success and not check mode
  type: dict
  sample: {entries: 1203, files: 1000, dirs: 150, symlinks: 50, hardlinks: 2, special: 1, bytes: 5242880}
paths:
  description: The normalised paths backed up.
  returned: success
  type: list
  elements: str
missing_paths:
  description: Paths that did not exist (only with O(ignore_missing=true)).
  returned: success
  type: list
  elements: str
created:
  description: UTC ISO-8601 start time.
  returned: success and not check mode
  type: str
duration:
  description: Seconds the module took.
  returned: success
  type: float
warnings_list:
  description: Non-fatal findings (skipped sockets, files that changed while being read).
  returned: success and not check mode
  type: list
  elements: str
reused:
  description: True when O(reuse_existing) returned an existing snapshot.
  returned: success and not check mode
  type: bool
would_backup:
  description: What would be backed up (check mode), with counts of entries, files, dirs, symlinks, special and bytes.
  returned: check mode
  type: dict
space:
  description: The free-space check (estimated_bytes, margin_bytes, available_bytes, filesystem_probe).
  returned: success, unless reused
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._backup.errors import BackupError  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._backup.names import escaped, safe_result  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._backup.snapshot import create_snapshot  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type='list', elements='path', required=True),
            exclude=dict(type='list', elements='str', default=[]),
            dest=dict(type='path', required=True),
            label=dict(type='str', required=True),
            compression=dict(type='str', default='auto', choices=['auto', 'zstd', 'gzip', 'none']),
            compression_level=dict(type='int'),
            package_state=dict(type='bool', default=True),
            xattrs=dict(type='bool', default=True),
            one_file_system=dict(type='bool', default=False),
            ignore_missing=dict(type='bool', default=False),
            space_check=dict(type='bool', default=True),
            space_margin_percent=dict(type='int', default=10),
            space_margin_mb=dict(type='int', default=64),
            reuse_existing=dict(type='bool', default=False),
            fsync=dict(type='bool', default=True),
            record_key=dict(type='str', no_log=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        changed, result = create_snapshot(
            p['paths'], p['dest'], p['label'], exclude=p['exclude'], compression=p['compression'],
            level=p['compression_level'], packages=p['package_state'], xattrs=p['xattrs'],
            one_file_system=p['one_file_system'], ignore_missing=p['ignore_missing'],
            space_check=p['space_check'], space_margin_percent=p['space_margin_percent'],
            space_margin_mb=p['space_margin_mb'], reuse_existing=p['reuse_existing'], do_fsync=p['fsync'],
            check_mode=module.check_mode, record_key=p['record_key'])
    except BackupError as exc:
        module.fail_json(**safe_result(dict(exc.details, msg=exc.msg)))
    except (OSError, IOError) as exc:
        module.fail_json(**safe_result({'msg': 'backup of %s to %s failed: %s' % (
            ', '.join(p['paths']), p['dest'], exc)}))
    result['warnings_list'] = result.pop('warnings', [])
    for warning in result['warnings_list'][:20]:
        module.warn(escaped(warning))
    module.exit_json(**safe_result(dict(result, changed=changed)))


if __name__ == '__main__':
    main()
