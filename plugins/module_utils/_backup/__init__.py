# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private backend of the itsop.change backup modules: snapshot, verify, restore, prune (one idea per file).

Nothing outside this collection's backup modules may import it; a module imports only the files it uses,
so AnsiballZ ships only those.

Layout of one snapshot (all files 0600, directories 0700)::

    DEST/LABEL/SNAPSHOT_ID/archive.tar.zst   (or .tar.gz / .tar)
    DEST/LABEL/SNAPSHOT_ID/manifest.jsonl    one JSON object per archived entry
    DEST/LABEL/SNAPSHOT_ID/packages.json     installed package versions (dpkg or rpm)
    DEST/LABEL/SNAPSHOT_ID/snapshot.json     the record, written last (hashes of the three above)
    DEST/LABEL/SNAPSHOT_ID/verify.json       written by a passing or failing verify

A snapshot is built in ``DEST/LABEL/.incomplete-SNAPSHOT_ID`` and renamed into place only after
every file is complete and synced, so a killed or failed run never leaves anything that looks
like a valid snapshot.  The archive is a POSIX (ustar/pax) tar stream, written by one of two writers,
chosen explicitly (``snapshot.select_writer``): with GNU tar on the host (``gnutar``), one walk writes
the list of names, GNU tar archives exactly that list (``--no-recursion``) and ``teeparse`` reads tar's
output, hashing each member's data as it passes to the compressor (by ``tee(2)``, ``ostee``, where the
kernel allows), so the manifest describes exactly the bytes in the archive.  Without GNU tar the pure
Python writer (``tarwriter``) produces the same stream and manifest.  Entries appear in the archive and
in the manifest in the same order (depth first, names sorted bytewise, ``walk``), which lets verify and
restore compare them as two streams without holding either in memory.

Files, one idea each:

- ``errors``: BackupError (the one exception modules report); ``interrupt``: SIGTERM/SIGHUP as an exception.
- ``layout``: names, formats, limits, labels; ``store``: private directories, atomic JSON, bounded reads.
- ``digest``: SHA-256 of files and the re-hash against a record; ``record``: the record, its HMAC, the
  snapshots of a label; ``selector``: the snapshot selector (argument spec and resolution).
- ``tools``: compressors and the host's tar (``HostTar``: GNU or not, xattrs or not, asked once per instance).
- ``walk``: the tree walk; ``tarwriter``: the Python writer; ``gnutar``: the GNU tar writer; ``teeparse``: the
  tar stream parser; ``ostee``: tee(2); ``pipes``: pipe writer, pump, stopping children; ``threads``: the
  background call, page flusher and following hash; ``manifest``: manifest writer and reader;
  ``packages``: the package state.
- ``snapshot``, ``verify``, ``restore``, ``prune``: the four operations; ``extract``, ``members``, ``compare``:
  what verify and restore share (extraction, the member check, one entry against the disk).
- ``names``: non-UTF-8 names in module results. The strict tar reader verify and restore (and the
  controller's archive check) use is the public ``module_utils/backup_tarscan.py``.

No file keeps state in module globals: caches live in instances (``HostTar``, ``OwnerNames``, ``TarTee``).
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type
