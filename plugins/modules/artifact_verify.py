#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: artifact_verify
short_description: Verify installation files and patches (size, digest, checksum file, GPG, ClamAV)
version_added: 0.1.0
description:
  - Verifies a list of artifacts before they are installed (SOP step 2.2, ISO 27001 A.8.19,
    NIST SI-7(15)) and returns the evidence per artifact.
  - Checks, as configured per artifact, the expected size, the expected digest (SHA-256 or SHA-512),
    the entry for the artifact's name in a checksum file (so swapped or renamed files are caught),
    a detached GPG signature against pinned fingerprints, and a ClamAV malware scan.
  - Fails closed. A check that cannot be carried out is a failure with a reason, never a pass.
    This covers a missing scanner, a scanner error (exit code 2), an empty or missing signature
    database, a file beyond the scan limits, encrypted archive content, an unknown signing key
    and a key that is not pinned.
  - GPG signatures are verified in a temporary, isolated C(GNUPGHOME) into which only O(gpg_keys)
    are imported, and are judged from C(gpg --status-fd) lines, never from the exit code alone.
    A signature must also be dated within the validity of its signing key and primary key
    (not before their creation, not at or after their expiry, neither revoked) and not more than
    O(gpg_max_clock_skew) seconds in the future.
  - Every file read must be a regular file; a FIFO, device, socket or directory is refused
    without blocking. The artifact (at most O(max_artifact_size)) is hashed in one streaming pass
    from the descriptor that was checked, and the same descriptor is given to gpg; checksum files
    (16 MiB), signatures (1 MiB) and key files (16 MiB) have small limits.
  - Checksum files are read strictly. Names are compared normalised (C(./a.bin), C(*a.bin),
    C(.//a.bin) and C(a.bin) are one name). Two different digests of one algorithm for one name
    fail the check. The same digest listed twice is accepted. A line that is an entry but cannot
    be read (a digest of the wrong length) fails the check.
  - Before the scan, packages and archives that ClamAV does not open (C(.deb) and other C(ar)
    archives, C(.rpm), C(cpio)) are unpacked, and so are tar, zip and gzip/bzip2/xz/zstd
    streams that may hold them. The members are written as plain files under generated names
    into a private temporary directory, scanned with the artifact, and removed afterwards.
    Unpacking is bounded by O(clamav.max_scansize) (total bytes), O(clamav.max_files) (members),
    O(clamav.max_recursion) (nesting) and O(clamav.unpack_timeout). Anything that cannot be
    unpacked (a limit, corrupt data, an encrypted member, zstd data without the C(zstd)
    program, lzip/lzop/compress/lz4 data, a file named like an archive or package that is none
    of the known formats) fails the scan with the reason.
  - The module is read-only. It never changes anything and always returns C(changed=false).
  - When any artifact fails, the module fails with a message naming every failing artifact and
    why, and still returns the complete evidence.
author:
  - itsop.change engineers (@itsop)
extends_documentation_fragment:
  - itsop.change.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: The module only reads; it runs the same checks in check mode.
  diff_mode:
    details: Nothing is ever changed, so there is no diff.
options:
  artifacts:
    description: Artifacts to verify.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Local path of the artifact (on the host the module runs on).
        type: path
        required: true
      name:
        description:
          - Name of the artifact, looked up in O(artifacts[].checksum_file).
          - Defaults to the base name of O(artifacts[].path).
        type: str
      size:
        description: Expected size in bytes.
        type: int
      digest:
        description:
          - "Expected digest, as V(sha256:<hex>), V(sha512:<hex>) or bare hex
            (64 digits for SHA-256, 128 for SHA-512)."
        type: str
      checksum_file:
        description:
          - Checksum file in C(sha256sum)/C(sha512sum) format (C(<hex>  <name>)) or BSD format
            (C(SHA256 (<name>\) = <hex>)). The entry is matched by the artifact's O(artifacts[].name).
          - A missing entry or a mismatch fails the check.
        type: path
      signature:
        description: Detached OpenPGP signature of the artifact (armored or binary).
        type: path
      gpg_fingerprints:
        description: Pinned fingerprints for this artifact, replacing O(gpg_fingerprints).
        type: list
        elements: str
      scan:
        description: Scan this artifact with ClamAV (when O(clamav.enabled=true)).
        type: bool
        default: true
  gpg_keys:
    description:
      - Public key files (armored or binary exports, or a keyring file of OpenPGP packets) to import
        into the isolated C(GNUPGHOME). Revocation certificates may be given too.
    type: list
    elements: path
    default: []
  gpg_fingerprints:
    description:
      - Pinned full fingerprints (40 or 64 hex digits; spaces allowed). A signature passes only
        when its signing key or its primary key is pinned. Key IDs are refused.
    type: list
    elements: str
    default: []
  gpg_binary:
    description: The gpg program.
    type: str
    default: gpg
  clamav:
    description: ClamAV scanning.
    type: dict
    default: {}
    suboptions:
      enabled:
        description: Scan the artifacts. Disabling records the scan as C(not_requested).
        type: bool
        default: true
      scanner:
        description:
          - V(clamscan) loads O(clamav.database) itself. V(clamdscan) asks a running clamd over
            O(clamav.clamd_socket) or O(clamav.clamd_config).
        type: str
        choices: [clamscan, clamdscan]
        default: clamscan
      binary:
        description: Path of the scanner program; defaults to O(clamav.scanner) found on E(PATH).
        type: path
      database:
        description:
          - Signature database directory or file for C(clamscan --database). When unset, clamscan
            uses its compiled-in database directory.
          - A directory without database files fails every scan.
        type: path
      clamd_socket:
        description:
          - clamd socket for V(clamdscan), a Unix socket path or V(tcp://host:port).
        type: str
      clamd_config:
        description: clamd configuration file given to clamdscan with C(--config-file).
        type: path
      max_filesize:
        description:
          - Largest file scanned (ClamAV size notation, for example V(100M)). Larger files and
            archive members fail; they are never reported clean.
        type: str
        default: 2000M
      max_scansize:
        description: Most data scanned per file, archive contents included.
        type: str
        default: 4000M
      max_files:
        description: Most files scanned inside one archive.
        type: int
        default: 10000
      max_recursion:
        description: Deepest archive nesting scanned.
        type: int
        default: 17
      timeout:
        description: Seconds before the scanner run is abandoned (a failure).
        type: int
        default: 3600
      unpack_timeout:
        description: Seconds allowed for unpacking one artifact before the scan; longer fails the scan.
        type: int
        default: 600
      unpack_tmpdir:
        description:
          - Directory in which the private temporary directory for unpacked members is made.
            Defaults to the system temporary directory. It needs room for up to
            O(clamav.max_scansize) per artifact.
        type: path
  max_artifact_size:
    description:
      - Largest artifact accepted (ClamAV size notation, for example V(64G)). A larger artifact
        fails the C(exists) check without being hashed.
    type: str
    default: 64G
  gpg_max_clock_skew:
    description:
      - Seconds a signature may be dated after the current time (clock skew between signer and
        controller). A signature dated later fails as dated in the future.
    type: int
    default: 300
  hash_buffer_size:
    description: Read buffer for hashing, in bytes.
    type: int
    default: 4194304
notes:
  - With V(clamdscan) the scan limits that apply inside archives are clamd's own
    (C(MaxFileSize), C(MaxScanSize), C(AlertExceedsMax yes) in C(clamd.conf)); the module still
    refuses files larger than O(clamav.max_filesize) or O(clamav.max_scansize) before scanning.
seealso:
  - name: ClamAV scanning documentation
    description: Scan limits and exit codes of clamscan.
    link: https://docs.clamav.net/manual/Usage/Scanning.html
  - name: GnuPG status output
    description: Meaning of the C(--status-fd) keywords used to judge signatures.
    link: https://github.com/gpg/gnupg/blob/master/doc/DETAILS
'''

EXAMPLES = r'''
- name: Verify a patch in quarantine on the controller
  itsop.change.artifact_verify:
    artifacts:
      - path: /srv/quarantine/app-2.4.1.tar.gz
        size: 10485760
        digest: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        checksum_file: /srv/quarantine/SHA256SUMS
        signature: /srv/quarantine/app-2.4.1.tar.gz.asc
    gpg_keys:
      - /etc/itsop/keys/vendor-release.asc
    gpg_fingerprints:
      - "A1B2 C3D4 E5F6 0718 293A  4B5C 6D7E 8F90 A1B2 C3D4"
    clamav:
      database: /var/lib/clamav
      max_filesize: 500M
      max_scansize: 1000M
  delegate_to: localhost
  register: verify

- name: Scan through the security team's clamd
  itsop.change.artifact_verify:
    artifacts:
      - path: /srv/quarantine/agent.deb
        digest: "{{ agent_sha256 }}"
    clamav:
      scanner: clamdscan
      clamd_socket: /run/clamav/clamd.ctl
'''

RETURN = r'''
passed:
  description: Whether every artifact passed every requested check.
  returned: always
  type: bool
  sample: true
kind:
  description: Evidence kind, always V(itsop.change.artifact_verification).
  returned: always
  type: str
record_version:
  description: Version of this evidence format (currently V(1)).
  returned: always
  type: int
started:
  description: UTC ISO-8601 time the verification started.
  returned: always
  type: str
  sample: "2025-03-01T10:00:00.000000Z"
finished:
  description: UTC ISO-8601 time the verification finished.
  returned: always
  type: str
seconds:
  description: Duration of the whole verification.
  returned: always
  type: float
summary:
  description: Counts of artifacts.
  returned: always
  type: dict
  sample: {"total": 2, "passed": 1, "failed": 1}
failed_artifacts:
  description: Names of the artifacts that failed.
  returned: always
  type: list
  elements: str
artifacts:
  description: Evidence per artifact, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Artifact name (matched in checksum files).
      type: str
    path:
      description: Absolute path verified.
      type: str
    passed:
      description: Whether every check of this artifact passed or was not requested.
      type: bool
    failures:
      description:
        - "One string per failing check: the check name, a colon and the reason,
          for example C(digest: sha256 mismatch)."
      type: list
      elements: str
    size:
      description: Actual size in bytes.
      type: int
    digests:
      description: Computed hex digests; always V(sha256), plus V(sha512) when a SHA-512 was expected.
      type: dict
      sample: {"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
    hash_seconds:
      description: Time spent hashing.
      type: float
    started:
      description: UTC ISO-8601 time the artifact's checks started.
      type: str
    finished:
      description: UTC ISO-8601 time the artifact's checks finished.
      type: str
    seconds:
      description: Time spent on this artifact, excluding the shared scanner run.
      type: float
    checks:
      description:
        - One entry per check, each with C(verdict) (V(pass), V(fail) or V(not_requested)) and C(reason).
        - C(exists); C(size) (C(expected), C(actual)); C(digest) (C(algorithm), C(expected), C(actual));
          C(checksum_file) (C(file), C(file_sha256), C(entry_name), C(entry_lines), C(entry_match)
          (V(exact) or V(basename)), C(duplicate_entries), C(algorithm), C(algorithms), C(expected),
          C(actual));
          C(signature) (C(signature_file), C(signature_sha256), C(pinned_fingerprints),
          C(signer_fingerprint), C(primary_fingerprint), C(signature_created), C(signers) (each with
          C(created_utc) and the keys' C(key_created), C(key_expires), C(key_revoked),
          C(primary_key_created), C(primary_key_expires), C(primary_key_revoked)),
          C(max_clock_skew), C(status) lines, C(gpg_rc), C(seconds));
          C(malware_scan) (C(signature) found, C(scanner), C(scanner_version), C(database_version),
          C(unpacked) (C(members), C(bytes), C(containers) (the first 100, each with C(member) and
          C(format)), C(containers_total), C(seconds), C(error)), C(member_findings) (up to 50
          failing members, each with C(member), C(verdict), C(reason), C(signature))).
      type: dict
scanner:
  description: The scanner used, or V(null) when scanning is disabled.
  returned: always
  type: dict
  contains:
    name:
      description: V(clamscan) or V(clamdscan).
      type: str
    binary:
      description: Resolved path of the scanner, V(null) when it is missing.
      type: str
    version:
      description: First line of C(--version), for example V(ClamAV 1.4.6/27500/Mon Jan 6 2025).
      type: str
    engine_version:
      description: ClamAV engine version.
      type: str
    database:
      description:
        - Signature database. C(path), C(version) (C(daily:27500,main:62) from CVD headers, or
          C(custom-sha256:<hex>) over the files of a custom database) and C(files) (per file name,
          size, and CVD header fields or sha256).
      type: dict
    limits:
      description: Scan limits passed to the scanner.
      type: dict
    run:
      description: C(rc), C(known_signatures), C(stderr_tail) and C(seconds) of the scanner run.
      type: dict
    unpack:
      description: Unpacking limits applied (C(max_bytes), C(max_members), C(max_depth), C(timeout)).
      type: dict
gpg:
  description:
    - GPG details (C(binary), C(version), C(imported_keys), C(pinned_fingerprints),
      C(max_clock_skew)), or V(null) when no artifact has a signature.
  returned: always
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._artifact.clamav import parse_size  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._artifact.digest import parse_digest  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._artifact.gpg import normalize_fingerprint  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils._artifact.verdict import VerifyError  # noqa: E402
from ansible_collections.itsop.change.plugins.module_utils.artifact import failure_message, verify_artifacts  # noqa: E402


def main():
    argument_spec = dict(
        artifacts=dict(type='list', elements='dict', required=True, options=dict(
            path=dict(type='path', required=True),
            name=dict(type='str'),
            size=dict(type='int'),
            digest=dict(type='str'),
            checksum_file=dict(type='path'),
            signature=dict(type='path'),
            gpg_fingerprints=dict(type='list', elements='str'),
            scan=dict(type='bool', default=True),
        )),
        gpg_keys=dict(type='list', elements='path', default=[], no_log=False),
        gpg_fingerprints=dict(type='list', elements='str', default=[]),
        gpg_binary=dict(type='str', default='gpg'),
        clamav=dict(type='dict', default={}, options=dict(
            enabled=dict(type='bool', default=True),
            scanner=dict(type='str', choices=['clamscan', 'clamdscan'], default='clamscan'),
            binary=dict(type='path'),
            database=dict(type='path'),
            clamd_socket=dict(type='str'),
            clamd_config=dict(type='path'),
            max_filesize=dict(type='str', default='2000M'),
            max_scansize=dict(type='str', default='4000M'),
            max_files=dict(type='int', default=10000),
            max_recursion=dict(type='int', default=17),
            timeout=dict(type='int', default=3600),
            unpack_timeout=dict(type='int', default=600),
            unpack_tmpdir=dict(type='path'),
        ), mutually_exclusive=[['clamd_socket', 'clamd_config']]),
        max_artifact_size=dict(type='str', default='64G'),
        gpg_max_clock_skew=dict(type='int', default=300),
        hash_buffer_size=dict(type='int', default=4 * 1024 * 1024),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params

    # Values the spec cannot express: notation of digests, fingerprints and sizes.
    errors = []
    for index, spec in enumerate(params['artifacts']):
        if spec['digest']:
            try:
                parse_digest(spec['digest'])
            except VerifyError as exc:
                errors.append('artifacts[%d].digest: %s' % (index, exc))
        for fpr in spec['gpg_fingerprints'] or []:
            try:
                normalize_fingerprint(fpr)
            except VerifyError as exc:
                errors.append('artifacts[%d].gpg_fingerprints: %s' % (index, exc))
    for fpr in params['gpg_fingerprints']:
        try:
            normalize_fingerprint(fpr)
        except VerifyError as exc:
            errors.append('gpg_fingerprints: %s' % exc)
    clamav = params['clamav'] or {}
    for key in ('max_filesize', 'max_scansize'):
        try:
            parse_size(clamav.get(key) or '0')
        except VerifyError as exc:
            errors.append('clamav.%s: %s' % (key, exc))
    try:
        max_artifact_size = parse_size(params['max_artifact_size'])
    except VerifyError as exc:
        errors.append('max_artifact_size: %s' % exc)
    if params['gpg_max_clock_skew'] < 0:
        errors.append('gpg_max_clock_skew must not be negative')
    if (clamav.get('unpack_timeout') or 0) < 1:
        errors.append('clamav.unpack_timeout must be at least 1 second')
    if params['hash_buffer_size'] < 4096:
        errors.append('hash_buffer_size must be at least 4096 bytes')
    if errors:
        module.fail_json(msg='invalid options: ' + '; '.join(errors), changed=False)

    scanner_options = None
    unpack = {'timeout': clamav.get('unpack_timeout'), 'tmpdir': clamav.get('unpack_tmpdir')}
    if clamav.get('enabled', True):
        scanner_options = dict((k, v) for k, v in clamav.items()
                               if k not in ('enabled', 'unpack_timeout', 'unpack_tmpdir'))

    evidence = verify_artifacts(
        params['artifacts'],
        gpg_keys=params['gpg_keys'],
        gpg_fingerprints=params['gpg_fingerprints'],
        gpg_binary=params['gpg_binary'],
        clamav=scanner_options,
        buffer_size=params['hash_buffer_size'],
        max_artifact_size=max_artifact_size,
        gpg_max_clock_skew=params['gpg_max_clock_skew'],
        unpack=unpack,
    )
    if not evidence['passed']:
        module.fail_json(msg=failure_message(evidence), changed=False, **evidence)
    module.exit_json(changed=False, **evidence)


if __name__ == '__main__':
    main()
