# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backend of the itsop.change backup modules: snapshot, verify, restore, prune.

Layout of one snapshot (all files 0600, directories 0700)::

    DEST/LABEL/SNAPSHOT_ID/archive.tar.zst   (or .tar.gz / .tar)
    DEST/LABEL/SNAPSHOT_ID/manifest.jsonl    one JSON object per archived entry
    DEST/LABEL/SNAPSHOT_ID/packages.json     installed package versions (dpkg or rpm)
    DEST/LABEL/SNAPSHOT_ID/snapshot.json     the record, written last (hashes of the three above)
    DEST/LABEL/SNAPSHOT_ID/verify.json       written by a passing or failing verify

A snapshot is built in ``DEST/LABEL/.incomplete-SNAPSHOT_ID`` and renamed into place only after
every file is complete and synced, so a killed or failed run never leaves anything that looks
like a valid snapshot.  The archive is a POSIX (ustar/pax) tar stream.  With GNU tar on the host,
one walk writes the list of names, GNU tar archives exactly that list (``--no-recursion``) and this
module reads tar's output, hashes each member's data as it passes and hands the same bytes to the
compressor, so the manifest describes exactly the bytes in the archive.  Without GNU tar a pure
Python writer produces the same stream and manifest.  Entries appear in the archive and in the
manifest in the same order (depth first, names sorted bytewise), which lets verify and restore
compare them as two streams without holding either in memory.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import datetime
import errno
import fnmatch
import grp
import hashlib
import hmac
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid

from ansible_collections.itsop.change.plugins.module_utils.backup_tarscan import (
    ArchiveRefused, MemberCheck, TarReader, shown)
from ansible_collections.itsop.change.plugins.module_utils.safe_input import (
    InputError, load_json, open_regular_file, read_regular_file)

FORMAT_MANIFEST = 'itsop-backup-manifest/1'
FORMAT_RECORD = 'itsop-backup-snapshot/1'
FORMAT_VERIFY = 'itsop-backup-verify/1'
RECORD_NAME = 'snapshot.json'
MANIFEST_NAME = 'manifest.jsonl'
PACKAGES_NAME = 'packages.json'
VERIFY_NAME = 'verify.json'
INCOMPLETE_PREFIX = '.incomplete-'
LIST_NAME = '.names'
ARCHIVE_NAMES = {'zstd': 'archive.tar.zst', 'gzip': 'archive.tar.gz', 'none': 'archive.tar'}
DEFAULT_LEVEL = {'zstd': 3, 'gzip': 6, 'none': 0}
CHUNK = 1024 * 1024
BLOCK = 512
SMALL_FILE = 256 * 1024
DETAIL_LIMIT = 50
#: size limits of the small files read back from the store (the manifest's is the size recorded, or this)
RECORD_LIMIT = 16 * 1024 * 1024
VERIFY_LIMIT = 1024 * 1024
MANIFEST_LIMIT = 4 * 1024 * 1024 * 1024
#: record authentication: HMAC-SHA256 over the canonical JSON of the record, with this domain prefix
RECORD_MAC_DOMAIN = b'itsop-backup-record/1\0'
RECORD_KEY_MIN = 32
SPARSE_EXAMPLES = 1000
LABEL_CHARS = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-')


class BackupError(Exception):
    """A failure with a message fit for ``fail_json`` and optional structured details."""

    def __init__(self, msg, **details):
        super(BackupError, self).__init__(msg)
        self.msg = msg
        self.details = details


# --------------------------------------------------------------------------- small helpers

def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(dt):
    return dt.strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def validate_label(label):
    if not label or len(label) > 128 or label[0] in '.-' or not set(label) <= LABEL_CHARS:
        raise BackupError("label %r is not valid: use 1-128 characters from A-Z a-z 0-9 . _ -, "
                          "not starting with '.' or '-'" % (label,))


def sha256_file(path, size=None, follow=True):
    """SHA-256 of a file; ``size`` when the caller knows it already, ``follow=False`` refuses a symlink."""
    fd = os.open(path, os.O_RDONLY if follow else os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
    try:
        return sha256_fd(fd, os.fstat(fd).st_size if size is None else size)
    finally:
        os.close(fd)


def sha256_fd(fd, size):
    """SHA-256 of what is left to read from ``fd``; ``size`` is the expected size (a hint only)."""
    digest = hashlib.sha256()
    if size <= SMALL_FILE:
        data = os.read(fd, size + 1)
        while data:
            digest.update(data)
            data = os.read(fd, CHUNK)
        return digest.hexdigest()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        count = os.readv(fd, [buf])
        if not count:
            break
        digest.update(view[:count])
    return digest.hexdigest()


def open_store_file(path, what, limit=None):
    """Open a file read back from the backup store: ``(fd, fstat)`` of a regular file of at most ``limit`` bytes.

    safe_input.open_regular_file for files that are streamed instead of read at once (archive, manifest):
    checked with ``stat`` before it is opened (a FIFO or device in the store is never opened), opened
    ``O_NONBLOCK`` and checked again with ``fstat`` on the descriptor (the file read is the file checked).
    """
    try:
        fd, st = open_regular_file(path, limit=limit, what=what)
    except InputError as exc:
        raise BackupError(str(exc), path=path) from None
    try:
        import fcntl
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)  # handed to zstd
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_store_json(path, what, limit):
    """A small JSON document from the store (record, verify verdict): regular file, size limit, no duplicate keys."""
    try:
        return load_json(read_regular_file(path, limit=limit, what=what).decode('utf-8'), '%s %s' % (what, path))
    except InputError as exc:
        raise BackupError(str(exc), path=path) from None
    except UnicodeDecodeError as exc:
        raise BackupError('%s %s is not UTF-8 (byte %d)' % (what, path, exc.start), path=path) from None


# --------------------------------------------------------------------------- record authentication

def record_key_bytes(key):
    """The record key as bytes; None when no key is configured. BackupError when it is too short."""
    if key is None or key == '':
        return None
    raw = key.encode('utf-8') if isinstance(key, str) else bytes(key)
    raw = raw.strip()
    if len(raw) < RECORD_KEY_MIN:
        raise BackupError('record_key is too short: %d characters, at least %d are needed (e.g. the output '
                          'of "openssl rand -hex 32")' % (len(raw), RECORD_KEY_MIN))
    return raw


def _record_body(record):
    body = dict(record)
    body.pop('signature', None)
    return RECORD_MAC_DOMAIN + json.dumps(body, sort_keys=True, separators=(',', ':'),
                                          ensure_ascii=True).encode('ascii')


def record_key_id(key):
    """A short public name of a key (HMAC of a fixed text): tells which key signed, reveals nothing of it."""
    return hmac.new(key, b'itsop-backup-record-key-id', hashlib.sha256).hexdigest()[:16]


def sign_record(record, key):
    """Add ``signature`` {alg, key_id, mac} to ``record`` (HMAC-SHA256 over everything else in it)."""
    record.pop('signature', None)
    record['signature'] = {'alg': 'HMAC-SHA256', 'key_id': record_key_id(key),
                           'mac': hmac.new(key, _record_body(record), hashlib.sha256).hexdigest()}
    return record


def check_record_signature(record, key, path):
    """Authenticate a loaded record; return True (checked), False (no key configured). BackupError when forged.

    With a key, an unsigned record is refused: whoever can write the store could otherwise drop the
    signature together with the rest.
    """
    sig = record.get('signature')
    if key is None:
        return False
    if not isinstance(sig, dict) or sig.get('alg') != 'HMAC-SHA256' or not isinstance(sig.get('mac'), str):
        raise BackupError('snapshot record %s is not signed, but a record key is configured: refusing it (an '
                          'unsigned record can be rewritten by whoever can write the backup store)' % path,
                          path=path)
    expected = hmac.new(key, _record_body(record), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sig['mac']):
        kid = record_key_id(key)
        other = ' (it names key %s, the configured key is %s)' % (sig.get('key_id'), kid) \
            if sig.get('key_id') != kid else ''
        raise BackupError('snapshot record %s fails its HMAC check%s: it was changed after the snapshot was '
                          'taken, or signed with another key; refusing it' % (path, other), path=path)
    return True


def fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def ensure_private_dir(path, check_mode=False):
    """Create ``path`` (and parents) with mode 0700; return True when something was created."""
    if os.path.isdir(path):
        return False
    if check_mode:
        return True
    os.makedirs(path, 0o700)
    os.chmod(path, 0o700)
    return True


def write_json_atomic(path, data, do_fsync=True):
    """Write ``data`` as JSON to ``path`` via a temporary file in the same directory (0600)."""
    directory = os.path.dirname(path) or '.'
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=directory)
    try:
        with os.fdopen(fd, 'w') as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write('\n')
            handle.flush()
            if do_fsync:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def which(name):
    for directory in [*os.environ.get('PATH', '/usr/bin:/bin').split(os.pathsep), '/usr/bin', '/bin']:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def resolve_compression(requested):
    if requested == 'auto':
        return 'zstd' if which('zstd') else 'gzip'
    if requested == 'zstd' and not which('zstd'):
        raise BackupError("compression 'zstd' requested but the zstd command is not installed; "
                          "use compression=auto or gzip")
    return requested


def compressor_cmd(kind, level):
    if kind == 'zstd':
        return [which('zstd'), '-q', '-T0', '-%d' % level, '-c']
    if kind == 'gzip':
        tool = which('pigz') or which('gzip')
        if not tool:
            raise BackupError('neither pigz nor gzip is installed on the host')
        return [tool, '-%d' % level, '-c']
    return None


def decompressor_cmd(kind):
    if kind == 'zstd':
        tool = which('zstd')
        if not tool:
            raise BackupError('the archive is zstd-compressed but the zstd command is not installed')
        return [tool, '-q', '-d', '-c']
    if kind == 'gzip':
        return [which('pigz') or which('gzip'), '-d', '-c']
    return None


def compression_of(archive_name):
    for kind, name in ARCHIVE_NAMES.items():
        if archive_name == name:
            return kind
    raise BackupError('unknown archive name %r in snapshot record' % (archive_name,))


class _Interrupted(BaseException):
    pass


class _TermGuard(object):
    """Turn SIGTERM/SIGHUP into an exception so cleanup code runs (main thread only)."""

    def __init__(self):
        self.old = {}

    def _handler(self, signum, frame):
        raise _Interrupted('interrupted by signal %d' % signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self.old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        return False


# --------------------------------------------------------------------------- tree walking

def normalise_roots(paths):
    """Absolute, normalised, deduplicated roots (a root inside another root is dropped), sorted."""
    roots = []
    for path in paths:
        if not path:
            continue
        roots.append(os.path.normpath(os.path.abspath(path)))
    roots = sorted(set(roots), key=path_key)
    kept = []
    for root in roots:
        if any(root == k or root.startswith(k.rstrip('/') + '/') for k in kept):
            continue
        kept.append(root)
    return kept


def path_key(path):
    """Sort key giving depth-first pre-order with bytewise-sorted names."""
    return [os.fsencode(part) for part in path.split('/') if part]


class Excluder(object):
    """Patterns with a '/' match the absolute path; others match the entry's name."""

    def __init__(self, patterns):
        self.full = [p for p in patterns or () if '/' in p]
        self.name = [p for p in patterns or () if '/' not in p]

    def __call__(self, path, name):
        for pat in self.name:
            if fnmatch.fnmatchcase(name, pat):
                return True
        for pat in self.full:
            if fnmatch.fnmatchcase(path, pat) or fnmatch.fnmatchcase(path, pat.rstrip('/') + '/*'):
                return True
        return False


def walk(roots, excluder, one_file_system=False, onerror=None):
    """Yield ``(path, lstat)`` depth first, names sorted bytewise, roots first."""
    for root in roots:
        try:
            st = os.lstat(root)
        except OSError as exc:
            if onerror:
                onerror(root, exc)
                continue
            raise
        yield root, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(root, st.st_dev, excluder, one_file_system, onerror)


def _walk_dir(top, dev, excluder, one_file_system, onerror):
    try:
        with os.scandir(top) as it:
            entries = sorted(((os.fsencode(e.name), e) for e in it), key=lambda x: x[0])
    except OSError as exc:
        raise BackupError('cannot list directory %s: %s' % (top, exc.strerror or exc), path=top) from None
    for _key, entry in entries:
        path = entry.path
        if excluder(path, entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue  # vanished while walking
            raise BackupError('cannot stat %s: %s' % (path, exc.strerror or exc), path=path) from None
        yield path, st
        if stat.S_ISDIR(st.st_mode) and not (one_file_system and st.st_dev != dev):
            yield from _walk_dir(path, dev, excluder, one_file_system, onerror)


def entry_type(mode):
    if stat.S_ISREG(mode):
        return 'file'
    if stat.S_ISDIR(mode):
        return 'dir'
    if stat.S_ISLNK(mode):
        return 'symlink'
    if stat.S_ISFIFO(mode):
        return 'fifo'
    if stat.S_ISCHR(mode):
        return 'chardev'
    if stat.S_ISBLK(mode):
        return 'blockdev'
    if stat.S_ISSOCK(mode):
        return 'socket'
    return 'unknown'


def scan_size(roots, excluder, one_file_system=False, missing=None):
    """Count entries and bytes (the check-mode report and the free-space estimate)."""
    counts = new_counts()
    for _path, st in walk(roots, excluder, one_file_system, onerror=missing):
        count_entry(counts, entry_type(st.st_mode), st)
    return counts


def new_counts():
    return {'entries': 0, 'files': 0, 'dirs': 0, 'symlinks': 0, 'special': 0, 'bytes': 0}


def count_entry(counts, kind, st):
    """Add one walked entry of ``kind`` (entry_type) to ``counts`` (new_counts)."""
    counts['entries'] += 1
    if kind == 'file':
        counts['files'] += 1
        counts['bytes'] += st.st_size
    elif kind == 'dir':
        counts['dirs'] += 1
    elif kind == 'symlink':
        counts['symlinks'] += 1
    else:
        counts['special'] += 1


def estimate_archive_bytes(counts):
    """Worst case: no compression, one header plus padding per entry, plus manifest lines."""
    return counts['bytes'] + counts['entries'] * (3 * BLOCK + 400) + 1024 * 1024


# --------------------------------------------------------------------------- tar writing

class _Names(object):
    """Cached uid/gid -> name lookups."""

    def __init__(self):
        self.users = {}
        self.groups = {}

    def user(self, uid):
        name = self.users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = ''
            self.users[uid] = name
        return name

    def group(self, gid):
        name = self.groups.get(gid)
        if name is None:
            try:
                name = grp.getgrgid(gid).gr_name
            except KeyError:
                name = ''
            self.groups[gid] = name
        return name


_USTAR = struct.Struct('100s8s8s8s12s12s8s1s100s8s32s32s8s8s155s12s')
_MAX7 = 8 ** 7
_MAX11 = 8 ** 11


def tar_header(name, mode, uid, gid, size, mtime, typeflag, linkname=b'', uname='', gname='',
               devmajor=0, devminor=0, xattrs=None):
    """One tar header (ustar when it fits, else a pax extended header plus ustar)."""
    uname_b = uname.encode('utf-8', 'surrogateescape')
    gname_b = gname.encode('utf-8', 'surrogateescape')
    prefix = b''
    short = name
    if len(name) > 100:
        cut = name.rfind(b'/', 0, 156)
        if cut > 0 and len(name) - cut - 1 <= 100:
            prefix, short = name[:cut], name[cut + 1:]
        else:
            short = None
    if (short is None or xattrs or len(linkname) > 100 or len(uname_b) > 32 or len(gname_b) > 32
            or not (0 <= uid < _MAX7 and 0 <= gid < _MAX7 and 0 <= size < _MAX11 and 0 <= mtime < _MAX11
                    and devmajor < _MAX7 and devminor < _MAX7)):
        return _pax_header(name, mode, uid, gid, size, mtime, typeflag, linkname, uname, gname,
                           devmajor, devminor, xattrs)
    buf = _USTAR.pack(short, b'%07o' % (mode & 0o7777), b'%07o' % uid, b'%07o' % gid, b'%011o' % size,
                      b'%011o' % mtime, b'        ', typeflag, linkname, b'ustar\x0000', uname_b, gname_b,
                      b'%07o' % devmajor, b'%07o' % devminor, prefix, b'')
    return buf[:148] + b'%06o\x00 ' % sum(buf) + buf[156:]


def _pax_header(name, mode, uid, gid, size, mtime, typeflag, linkname, uname, gname,
                devmajor, devminor, xattrs):
    info = tarfile.TarInfo(name.decode('utf-8', 'surrogateescape'))
    info.mode = mode & 0o7777
    info.uid = uid
    info.gid = gid
    info.size = size
    info.mtime = mtime
    info.type = typeflag
    info.linkname = linkname.decode('utf-8', 'surrogateescape')
    info.uname = uname
    info.gname = gname
    info.devmajor = devmajor
    info.devminor = devminor
    if xattrs:
        for key, value in xattrs.items():
            info.pax_headers['SCHILY.xattr.' + key] = value.decode('utf-8', 'surrogateescape')
    return info.tobuf(tarfile.PAX_FORMAT, 'utf-8', 'surrogateescape')


def read_xattrs(path):
    if not hasattr(os, 'listxattr'):
        return None
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return None
    if not names:
        return None
    result = {}
    for key in names:
        try:
            value = os.getxattr(path, key, follow_symlinks=False)
        except OSError:
            continue
        try:
            value.decode('utf-8')
        except UnicodeDecodeError:
            continue  # tar's pax xattr records carry text; binary values (e.g. ACL blobs) are skipped
        result[key] = value
    return result or None


class _PipeWriter(object):
    """Buffered writer onto the compressor's stdin that reports the compressor's failure."""

    def __init__(self, fd, proc):
        self.fd = fd
        self.proc = proc
        self.buf = bytearray()

    def write(self, data):
        self.buf += data
        if len(self.buf) >= CHUNK:
            self.flush()

    def write_large(self, view):
        if self.buf:
            self.flush()
        self._write_all(view)

    def flush(self):
        if self.buf:
            self._write_all(memoryview(self.buf))
            self.buf = bytearray()

    def _write_all(self, view):
        try:
            while len(view):
                count = os.write(self.fd, view)
                view = view[count:]
        except (BrokenPipeError, OSError) as exc:
            raise _CompressorGone(exc) from None


class _CompressorGone(Exception):
    pass


class _Flusher(object):
    """Push the archive's dirty pages to disk while it is being written, so the final fsync is short."""

    INTERVAL = 0.25

    def __init__(self, fd):
        self.fd = fd
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.daemon = True
        self.thread.start()

    def _run(self):
        while not self.done.wait(self.INTERVAL):
            try:
                os.fdatasync(self.fd)
            except OSError:
                return  # the final fsync reports any real error

    def stop(self):
        self.done.set()
        self.thread.join()


class _FollowHash(object):
    """SHA-256 of a file while another process appends to it (read from the page cache as it grows).

    ``finish`` is called once the writer has exited, the rest is read up to the end; ``result``
    returns the digest of the whole file.
    """

    POLL = 0.02

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY)
        self.writer_done = threading.Event()
        self.worker = _Background(self._run)

    def _run(self):
        digest = hashlib.sha256()
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        try:
            while True:
                done = self.writer_done.is_set()  # read before reading: a last read after it sees everything
                count = os.readv(self.fd, [buf])
                if count:
                    digest.update(view[:count])
                elif done:
                    return digest.hexdigest()
                else:
                    time.sleep(self.POLL)
        finally:
            os.close(self.fd)

    def finish(self):
        self.writer_done.set()

    def result(self):
        return self.worker.result()


class _Background(object):
    """Run ``func(*args)`` in a thread; ``result()`` joins and returns its value or raises its error."""

    def __init__(self, func, *args):
        self.value = self.error = None
        self.thread = threading.Thread(target=self._run, args=(func, args))
        self.thread.daemon = True
        self.thread.start()

    def _run(self, func, args):
        try:
            self.value = func(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self.error = exc

    def result(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value


# --------------------------------------------------------------------------- snapshot

def snapshot_dirs(dest, label):
    """Complete snapshots of ``label`` under ``dest`` as (record, path), oldest first."""
    base = os.path.join(dest, label)
    found = []
    if not os.path.isdir(base):
        return found
    for name in os.listdir(base):
        if name.startswith('.'):
            continue
        path = os.path.join(base, name)
        record_path = os.path.join(path, RECORD_NAME)
        if not os.path.isfile(record_path):
            continue
        try:
            record = load_record(path)
        except BackupError:
            continue
        if record.get('label') != label:
            continue  # a record copied in from another label
        found.append((record, path))
    found.sort(key=lambda item: (item[0].get('created_epoch', 0), item[0].get('snapshot_id', '')))
    return found


def load_record(snapshot_dir, key=None):
    """The snapshot record of ``snapshot_dir``, authenticated with ``key`` (bytes) when one is given."""
    return open_record(snapshot_dir, key)[0]


def open_record(snapshot_dir, key=None):
    """``(record, authenticated)``: the record, checked against ``key`` when one is configured."""
    path = os.path.join(snapshot_dir, RECORD_NAME)
    if os.path.basename(os.path.normpath(snapshot_dir)).startswith(INCOMPLETE_PREFIX):
        raise BackupError('%s is an incomplete snapshot (its run did not finish)' % snapshot_dir)
    record = read_store_json(path, 'snapshot record', RECORD_LIMIT)
    if not isinstance(record, dict) or record.get('format') != FORMAT_RECORD:
        raise BackupError('snapshot record %s has an unknown format' % path)
    for key_name in ('archive', 'manifest', 'packages'):
        entry = record.get(key_name)
        if entry is not None and not isinstance(entry, dict):
            raise BackupError('snapshot record %s: %s is not an object' % (path, key_name))
        name = (entry or {}).get('name')
        if name is not None and (not isinstance(name, str) or not name or '/' in name or name.startswith('.')):
            raise BackupError('snapshot record %s names an invalid %s file %r' % (path, key_name, name))
    if not (record.get('archive') or {}).get('name') or not (record.get('manifest') or {}).get('name'):
        raise BackupError('snapshot record %s lacks the archive or manifest entry' % path)
    for key_name, fields in (('archive', ('sha256',)), ('manifest', ('sha256',))):
        for field in fields:
            if not isinstance(record[key_name].get(field), str):
                raise BackupError('snapshot record %s: %s.%s is missing or not a string' % (path, key_name, field))
    totals = record.get('totals')
    if not isinstance(totals, dict) or not all(isinstance(totals.get(k), int) for k in ('entries', 'files', 'bytes')):
        raise BackupError('snapshot record %s: totals must hold the integers entries, files and bytes' % path)
    for field in ('snapshot_id', 'label'):
        if not isinstance(record.get(field), str):
            raise BackupError('snapshot record %s: %s is missing or not a string' % (path, field))
    authenticated = check_record_signature(record, key, path)
    if record.get('snapshot_id') != os.path.basename(os.path.normpath(snapshot_dir)):
        raise BackupError('snapshot record %s belongs to snapshot %r, not to the directory it is in; refusing it'
                          % (path, record.get('snapshot_id')), path=path)
    return record, authenticated


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


def package_state():
    """Installed packages as (manager, [{name, arch, version}]) or (None, [])."""
    if which('dpkg-query'):
        proc = subprocess.run(
            [which('dpkg-query'), '-W', '-f=${Package}\t${Architecture}\t${Version}\t${db:Status-Abbrev}\n'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if proc.returncode == 0:
            pkgs = []
            for line in proc.stdout.decode('utf-8', 'replace').splitlines():
                parts = line.split('\t')
                if len(parts) == 4 and parts[3].strip().startswith('ii'):
                    pkgs.append({'name': parts[0], 'arch': parts[1], 'version': parts[2]})
            return 'dpkg', sorted(pkgs, key=lambda p: (p['name'], p['arch']))
    if which('rpm'):
        proc = subprocess.run(
            [which('rpm'), '-qa', '--qf', '%{NAME}\t%{ARCH}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\n'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if proc.returncode == 0:
            pkgs = []
            for line in proc.stdout.decode('utf-8', 'replace').splitlines():
                parts = line.split('\t')
                if len(parts) == 3:
                    pkgs.append({'name': parts[0], 'arch': parts[1], 'version': parts[2]})
            return 'rpm', sorted(pkgs, key=lambda p: (p['name'], p['arch']))
    return None, []


def _options_of(record):
    return {'paths': record.get('paths'), 'exclude': record.get('exclude'),
            'compression': record.get('compression'), 'one_file_system': record.get('one_file_system')}


def snapshot_result(record, snapshot_dir):
    """The module return value for an existing snapshot record."""
    return {
        'snapshot_id': record['snapshot_id'],
        'label': record['label'],
        'snapshot_dir': snapshot_dir,
        'record_path': os.path.join(snapshot_dir, RECORD_NAME),
        'archive_path': os.path.join(snapshot_dir, record['archive']['name']),
        'archive_sha256': record['archive']['sha256'],
        'archive_size': record['archive']['size'],
        'compression': record['compression'],
        'manifest_path': os.path.join(snapshot_dir, record['manifest']['name']),
        'manifest_sha256': record['manifest']['sha256'],
        'package_state_path': (os.path.join(snapshot_dir, record['packages']['name'])
                               if record.get('packages') else None),
        'package_state_sha256': (record.get('packages') or {}).get('sha256'),
        'package_manager': (record.get('packages') or {}).get('manager'),
        'package_count': (record.get('packages') or {}).get('count', 0),
        'file_count': record['totals']['files'],
        'entry_count': record['totals']['entries'],
        'bytes': record['totals']['bytes'],
        'totals': record['totals'],
        'paths': record['paths'],
        'missing_paths': record.get('missing_paths', []),
        'created': record['created'],
        'duration': record['duration'],
        'warnings': record.get('warnings', []),
        'host': record.get('host'),
        'sparse_files': (record.get('sparse') or {}).get('count', 0),
        'record_signed': isinstance(record.get('signature'), dict),
    }


def create_snapshot(paths, dest, label, exclude=None, compression='auto', level=None,
                    packages=True, xattrs=True, one_file_system=False, ignore_missing=False,
                    space_check=True, space_margin_percent=10, space_margin_mb=64,
                    reuse_existing=False, do_fsync=True, check_mode=False, record_key=None):
    """Create one snapshot; returns ``(changed, result)``. Raises BackupError on any failure.

    ``record_key``: the controller's record key (str); the record is then signed (HMAC-SHA256) and a
    snapshot is only re-used when its record carries a valid signature.
    """
    started = time.time()
    validate_label(label)
    key = record_key_bytes(record_key)
    exclude = list(exclude or [])
    kind = resolve_compression(compression)
    if level is None:
        level = DEFAULT_LEVEL[kind]
    roots = normalise_roots(paths)
    if not roots:
        raise BackupError('paths is empty: nothing to back up')
    dest = os.path.normpath(os.path.abspath(dest))
    for root in roots:
        if dest == root or dest.startswith(root.rstrip('/') + '/'):
            exclude.append(dest)  # never back up the backup store into itself
    excluder = Excluder(exclude)
    missing = [r for r in roots if not os.path.lexists(r)]
    if missing and not ignore_missing:
        raise BackupError('paths do not exist: %s' % ', '.join(missing), missing_paths=missing)
    roots = [r for r in roots if r not in missing]
    if not roots:
        raise BackupError('none of the paths exist: %s' % ', '.join(missing), missing_paths=missing)

    wanted = {'paths': roots, 'exclude': sorted(set(exclude)), 'compression': kind,
              'one_file_system': one_file_system}
    reuse_skipped = []
    if reuse_existing:
        for record, path in reversed(snapshot_dirs(dest, label)):
            if _options_of(record) == wanted:
                if key is not None and not isinstance(record.get('signature'), dict):
                    reuse_skipped.append('snapshot %s not re-used: its record is not signed and a record key is '
                                         'configured' % record['snapshot_id'])
                    continue
                record, authenticated = open_record(path, key)  # a forged record fails here, loudly
                result = snapshot_result(record, path)
                result['reused'] = True
                result['record_authenticated'] = authenticated
                return False, result

    tool = gnu_tar()
    space = None
    if check_mode or not tool:
        counts = scan_size(roots, excluder, one_file_system)
        space = _space_check(counts, dest, space_check, space_margin_percent, space_margin_mb)
    if check_mode:
        return True, {'snapshot_id': None, 'label': label, 'paths': roots, 'missing_paths': missing,
                      'would_backup': counts, 'space': space, 'compression': kind,
                      'duration': round(time.time() - started, 3)}

    created = utc_now()
    snapshot_id = '%s-%s' % (created.strftime('%Y%m%dT%H%M%SZ'), uuid.uuid4().hex[:8])
    label_dir = os.path.join(dest, label)
    ensure_private_dir(dest)
    ensure_private_dir(label_dir)
    work = os.path.join(label_dir, INCOMPLETE_PREFIX + snapshot_id)
    final = os.path.join(label_dir, snapshot_id)
    os.mkdir(work, 0o700)
    warnings = list(reuse_skipped)
    try:
        with _TermGuard():
            names = None
            sparse = _Sparse()
            if tool:
                # one walk: the name list GNU tar archives, and the counts for the space check
                list_path = os.path.join(work, LIST_NAME)
                counts, multi = _write_list(list_path, roots, excluder, one_file_system, warnings, sparse)
                space = _space_check(counts, dest, space_check, space_margin_percent, space_margin_mb)
                names = (tool, list_path, multi)
            record = _build(work, roots, excluder, one_file_system, kind, level, packages, xattrs,
                            do_fsync, label, snapshot_id, created, started, wanted, missing, names, warnings,
                            sparse, key)
            os.rename(work, final)
            if do_fsync:
                fsync_dir(label_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    result = snapshot_result(record, final)
    result['reused'] = False
    result['space'] = space
    result['record_authenticated'] = key is not None
    return True, result


def _space_check(counts, dest, space_check, margin_percent, margin_mb):
    """Free-space figures for ``counts``; raise BackupError when the snapshot would not fit."""
    needed = estimate_archive_bytes(counts)
    margin = int(needed * margin_percent / 100.0) + margin_mb * 1024 * 1024
    probe = dest
    while not os.path.isdir(probe):
        probe = os.path.dirname(probe)
    available = free_bytes(probe)
    space = {'estimated_bytes': needed, 'margin_bytes': margin, 'available_bytes': available,
             'filesystem_probe': probe}
    if space_check and available < needed + margin:
        raise BackupError(
            'not enough free space in %s for the snapshot: %d bytes available, need %d (estimate) + %d '
            '(margin)' % (probe, available, needed, margin), space=space, would_backup=counts)
    return space


def _build(work, roots, excluder, one_file_system, kind, level, packages, xattrs, do_fsync,
           label, snapshot_id, created, started, wanted, missing, names, warnings, sparse, key=None):
    old_umask = os.umask(0o077)
    try:
        archive_name = ARCHIVE_NAMES[kind]
        archive_path = os.path.join(work, archive_name)
        manifest_path = os.path.join(work, MANIFEST_NAME)
        archive_fd = os.open(archive_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            cmd = compressor_cmd(kind, level)
            if cmd:
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=archive_fd,
                                        stderr=subprocess.PIPE)
                _set_pipe_size(proc.stdin.fileno())
                writer = _PipeWriter(proc.stdin.fileno(), proc)
            else:
                proc = None
                writer = _PipeWriter(archive_fd, None)
            stderr_box = []
            reader = None
            flusher = _Flusher(archive_fd) if do_fsync else None
            follower = _FollowHash(archive_path)
            if proc:
                reader = threading.Thread(target=lambda: stderr_box.append(proc.stderr.read()))
                reader.daemon = True
                reader.start()
            try:
                with open(manifest_path, 'wb', buffering=CHUNK) as manifest:
                    header = {'format': FORMAT_MANIFEST, 'snapshot_id': snapshot_id, 'label': label,
                              'created': iso(created), 'paths': roots, 'host': socket.gethostname()}
                    if names:
                        totals, manifest_sha, manifest_size = _stream_gnu(writer, manifest, names, xattrs,
                                                                          warnings, header)
                    else:
                        totals, manifest_sha, manifest_size = _stream(
                            writer, manifest, roots, excluder, one_file_system, xattrs, warnings, header, sparse)
                        writer.write(b'\0' * (BLOCK * 2))
                    manifest.flush()
                    if do_fsync:
                        os.fsync(manifest.fileno())
                writer.flush()
                if proc:
                    proc.stdin.close()
                    rc = proc.wait()
                    reader.join()
                    if rc != 0:
                        raise BackupError('the compressor %s failed (exit %d) writing %s: %s' % (
                            kind, rc, archive_path,
                            (b''.join(stderr_box)).decode('utf-8', 'replace').strip()))
            except _CompressorGone as gone:
                if not proc:
                    raise BackupError('writing %s failed: %s' % (archive_path, gone.args[0])) from None
                if proc:
                    proc.stdin.close()
                    proc.wait()
                    reader.join()
                raise BackupError('the compressor %s stopped while writing %s: %s' % (
                    kind, archive_path, (b''.join(stderr_box)).decode('utf-8', 'replace').strip()
                    or 'broken pipe')) from None
            except BaseException:
                if proc and proc.poll() is None:
                    proc.kill()
                    proc.wait()
                raise
            finally:
                if flusher:
                    flusher.stop()
                follower.finish()  # the writer (compressor or this process) has stopped writing
            if do_fsync:
                os.fsync(archive_fd)
            archive_sha = follower.result()
        finally:
            os.close(archive_fd)
        if names:
            os.unlink(names[1])
        archive_size = os.path.getsize(archive_path)

        pkg_entry = None
        if packages:
            manager, pkgs = package_state()
            pkg_doc = {'format': 'itsop-package-state/1', 'snapshot_id': snapshot_id,
                       'manager': manager, 'count': len(pkgs), 'packages': pkgs}
            pkg_path = os.path.join(work, PACKAGES_NAME)
            write_json_atomic(pkg_path, pkg_doc, do_fsync)
            pkg_entry = {'name': PACKAGES_NAME, 'sha256': sha256_file(pkg_path),
                         'manager': manager, 'count': len(pkgs)}
            if manager is None:
                warnings.append('no dpkg-query or rpm found: package state is empty')

        if sparse.count:
            warnings.append('%d sparse file(s) (e.g. %s) are archived and restored fully allocated: their holes '
                            'become zeros on disk after a restore' % (sparse.count, sparse.paths[0]))
        finished = utc_now()
        record = {
            'format': FORMAT_RECORD,
            'snapshot_id': snapshot_id,
            'label': label,
            'host': socket.gethostname(),
            'created': iso(created),
            'created_epoch': created.timestamp(),
            'finished': iso(finished),
            'duration': round(time.time() - started, 3),
            'compression': kind,
            'compression_level': level,
            'paths': roots,
            'exclude': wanted['exclude'],
            'one_file_system': one_file_system,
            'missing_paths': missing,
            'archive': {'name': archive_name, 'sha256': archive_sha, 'size': archive_size},
            'manifest': {'name': MANIFEST_NAME, 'sha256': manifest_sha, 'size': manifest_size,
                         'entries': totals['entries']},
            'packages': pkg_entry,
            'totals': totals,
            'warnings': warnings,
            'xattrs': bool(xattrs),
            'sparse': {'count': sparse.count, 'paths': sparse.paths},
        }
        if key is not None:
            sign_record(record, key)
        write_json_atomic(os.path.join(work, RECORD_NAME), record, do_fsync)
        if do_fsync:
            fsync_dir(work)
        return record
    finally:
        os.umask(old_umask)


class _Sparse(object):
    """Files with holes seen by the walk: their count and the first SPARSE_EXAMPLES paths."""

    def __init__(self):
        self.count = 0
        self.paths = []

    def add(self, path):
        self.count += 1
        if len(self.paths) < SPARSE_EXAMPLES:
            self.paths.append(path)


def _manifest_emitter(manifest):
    digest = hashlib.sha256()
    size = [0]
    encode = json.JSONEncoder(separators=(',', ':'), check_circular=False).encode

    def emit(obj):
        """Write one manifest line: a dict, or a line already encoded by ``_FILE_LINE``."""
        line = (obj if obj.__class__ is str else encode(obj) + '\n').encode('utf-8', 'surrogateescape')
        digest.update(line)
        manifest.write(line)
        size[0] += len(line)

    return emit, digest, size


def _stream_gnu(writer, manifest, names, xattrs, warnings, header):
    """GNU tar writes the archive from the name list; return (totals, manifest sha256, manifest size)."""
    tool, list_path, multi = names
    emit, digest, size = _manifest_emitter(manifest)
    emit(header)
    totals = _stream_tar(tool, list_path, multi, writer, emit, xattrs, warnings)
    emit({'end': True, 'totals': totals})
    return totals, digest.hexdigest(), size[0]


def _stream(writer, manifest, roots, excluder, one_file_system, xattrs, warnings, header, sparse):
    """Fallback without GNU tar: write the tar stream and the manifest in one pass in Python."""
    emit, digest, size = _manifest_emitter(manifest)
    emit(header)
    names = _Names()
    links = {}
    totals = {'entries': 0, 'files': 0, 'dirs': 0, 'symlinks': 0, 'hardlinks': 0, 'special': 0,
              'bytes': 0}
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    for path, st in walk(roots, excluder, one_file_system):
        mode = st.st_mode
        kind = entry_type(mode)
        if kind in ('socket', 'unknown'):
            warnings.append('skipped %s %s (tar cannot archive it)' % (kind, path))
            continue
        member = os.fsencode(path.lstrip('/')) or b'.'
        uname = names.user(st.st_uid)
        gname = names.group(st.st_gid)
        mtime = int(st.st_mtime)
        entry = {'path': path, 'type': kind, 'mode': '%04o' % stat.S_IMODE(mode), 'uid': st.st_uid,
                 'gid': st.st_gid, 'owner': uname, 'group': gname, 'mtime': mtime}
        xat = read_xattrs(path) if xattrs else None
        if xat:
            entry['xattrs'] = sorted(xat)
        totals['entries'] += 1
        if kind == 'file' and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = links.get(key)
            if first is not None:
                entry['type'] = 'hardlink'
                entry['link'] = first[0]
                entry['sha256'] = first[1]
                entry['size'] = st.st_size
                totals['hardlinks'] += 1
                writer.write(tar_header(member, mode, st.st_uid, st.st_gid, 0, mtime, tarfile.LNKTYPE,
                                        os.fsencode(first[0].lstrip('/')), uname, gname, xattrs=xat))
                emit(entry)
                continue
        if kind == 'file':
            if st.st_size >= st.st_blocks * 512 + 4096:
                sparse.add(path)
            sha = _stream_file(writer, path, st, member, mtime, uname, gname, xat, buf, view, warnings)
            entry['size'] = st.st_size
            entry['sha256'] = sha
            totals['files'] += 1
            totals['bytes'] += st.st_size
            if st.st_nlink > 1:
                links[(st.st_dev, st.st_ino)] = (path, sha)
        elif kind == 'dir':
            totals['dirs'] += 1
            writer.write(tar_header(member.rstrip(b'/') + b'/', mode, st.st_uid, st.st_gid, 0, mtime,
                                    tarfile.DIRTYPE, b'', uname, gname, xattrs=xat))
        elif kind == 'symlink':
            try:
                target = os.readlink(path)
            except OSError as exc:
                raise BackupError('cannot read symlink %s: %s' % (path, exc.strerror or exc), path=path) from None
            entry['target'] = target
            totals['symlinks'] += 1
            writer.write(tar_header(member, mode, st.st_uid, st.st_gid, 0, mtime, tarfile.SYMTYPE,
                                    os.fsencode(target), uname, gname, xattrs=xat))
        else:
            totals['special'] += 1
            flag = {'fifo': tarfile.FIFOTYPE, 'chardev': tarfile.CHRTYPE, 'blockdev': tarfile.BLKTYPE}[kind]
            major = minor = 0
            if kind != 'fifo':
                major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
                entry['rdev'] = [major, minor]
            writer.write(tar_header(member, mode, st.st_uid, st.st_gid, 0, mtime, flag, b'', uname, gname,
                                    major, minor, xattrs=xat))
        emit(entry)
    emit({'end': True, 'totals': totals})
    return totals, digest.hexdigest(), size[0]


def _stream_file(writer, path, st, member, mtime, uname, gname, xat, buf, view, warnings):
    size = st.st_size
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NOATIME', 0))
    except OSError as exc:
        if exc.errno == errno.EPERM and getattr(os, 'O_NOATIME', 0):
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
            except OSError as exc2:
                raise BackupError('cannot read %s: %s' % (path, exc2.strerror or exc2), path=path) from None
        else:
            raise BackupError('cannot read %s: %s' % (path, exc.strerror or exc), path=path) from None
    digest = hashlib.sha256()
    try:
        writer.write(tar_header(member, st.st_mode, st.st_uid, st.st_gid, size, mtime, tarfile.REGTYPE,
                                b'', uname, gname, xattrs=xat))
        remaining = size
        small = size <= SMALL_FILE
        while remaining > 0:
            try:
                count = os.readv(fd, [view[:min(CHUNK, remaining)]])
            except OSError as exc:
                raise BackupError('cannot read %s: %s' % (path, exc.strerror or exc), path=path) from None
            if count == 0:
                warnings.append('%s shrank by %d bytes while being read; padded with zeros' % (path, remaining))
                zeros = bytes(min(CHUNK, remaining))
                while remaining > 0:
                    part = zeros[:min(len(zeros), remaining)]
                    digest.update(part)
                    writer.write(part)
                    remaining -= len(part)
                break
            chunk = view[:count]
            digest.update(chunk)
            if small:
                writer.write(chunk)
            else:
                writer.write_large(chunk)
            remaining -= count
        if size and os.read(fd, 1):
            warnings.append('%s grew while being read; archived its first %d bytes' % (path, size))
    finally:
        os.close(fd)
    pad = (-size) % BLOCK
    if pad:
        writer.write(b'\0' * pad)
    return digest.hexdigest()


# --------------------------------------------------------------------------- GNU tar writer

_TAR_GNU = []
_ZERO_BLOCK = bytes(BLOCK)
_TYPE_OF_FLAG = {b'0': 'file', b'\0': 'file', b'7': 'file', b'1': 'hardlink', b'2': 'symlink',
                 b'3': 'chardev', b'4': 'blockdev', b'5': 'dir', b'6': 'fifo'}
_BENIGN_TAR = ('file changed as we read it', 'No such file or directory', 'file removed before we read it', 'shrank',
               'socket ignored')


def gnu_tar():
    """Path of GNU tar, or None when the host's tar is not GNU tar."""
    if not _TAR_GNU:
        tool = which('tar')
        found = None
        if tool:
            try:
                out = subprocess.run([tool, '--version'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     check=False).stdout
            except OSError:
                out = b''
            if b'GNU tar' in out:
                found = tool
        _TAR_GNU.append(found)
    return _TAR_GNU[0]


def tar_create_cmd(tool, list_path, xattrs=True):
    """GNU tar writing a POSIX archive of exactly the names in ``list_path`` (NUL separated, relative to /)."""
    cmd = [tool, '-c', '-f', '-', '-C', '/', '--format=posix',
           '--pax-option=delete=atime,delete=ctime,delete=mtime', '--no-recursion', '--null',
           '--no-unquote', '--verbatim-files-from']
    if xattrs and _tar_has_xattrs():
        cmd += ['--xattrs', '--xattrs-include=*']
    return [*cmd, '-T', list_path]


def _octal(field):
    try:
        return int(field.rstrip(b'\0 ') or b'0', 8)
    except ValueError:
        pass
    if field[:1] and field[0] & 0x80:  # base-256 (GNU extension)
        value = 0
        for byte in bytearray(field[1:]):
            value = (value << 8) | byte
        return value
    field = field.split(b'\0', 1)[0].strip()
    return int(field, 8) if field else 0


def _cstr(field):
    return field.split(b'\0', 1)[0]


def _pax_records(data):
    records = {}
    pos = 0
    while pos < len(data):
        space = data.index(b' ', pos)
        length = int(data[pos:space])
        if length <= 0:
            raise BackupError('malformed pax header written by tar')
        key, _sep, value = data[space + 1:pos + length - 1].partition(b'=')
        records[key.decode('utf-8', 'surrogateescape')] = value
        pos += length
    return records


_json_str = json.encoder.encode_basestring_ascii  # what JSONEncoder (ensure_ascii) uses for strings
_FILE_LINE = ('{"path":%s,"type":"file","mode":"%s","uid":%d,"gid":%d,"owner":%s,"group":%s,"mtime":%d,'
              '"size":%d,"sha256":"%s"}\n')


class _TarTee(object):
    """Parse a tar stream chunk by chunk as it passes to the compressor; emit one manifest entry per member.

    The SHA-256 of every regular member is computed over the member bytes in the stream, so the
    manifest describes exactly what is archived.  Memory is bounded: only the current header, a pax
    header and the hashes of files that have more than one link are kept.
    """

    def __init__(self, emit, multi_linked):
        self.emit = emit
        self.multi = multi_linked
        self.linked = {}
        self.pending = bytearray()  # partial header / pax data
        self.need = BLOCK  # bytes wanted into ``pending`` (header or pax/long-name data)
        self.state = 'header'
        self.skip = 0  # padding still to skip
        self.remaining = 0  # member data still to hash
        self.digest = None
        self.entry = None
        self.pax = {}
        self.long_name = None
        self.long_link = None
        self.zero_blocks = 0
        self.ended = False
        self._pad = 0
        self.names = {}
        self.ids = {}
        self.modes = {}
        self.quoted = {}
        self.totals = {'entries': 0, 'files': 0, 'dirs': 0, 'symlinks': 0, 'hardlinks': 0, 'special': 0,
                       'bytes': 0}

    def feed(self, view):
        pos = 0
        size = len(view)
        while pos < size:
            if self.skip:
                step = min(self.skip, size - pos)
                self.skip -= step
                pos += step
                continue
            if self.remaining:
                step = min(self.remaining, size - pos)
                self.digest.update(view[pos:pos + step])
                self.remaining -= step
                pos += step
                if not self.remaining:
                    self._finish_file()
                continue
            if self.ended:
                return  # zero records after the end marker
            want = self.need - len(self.pending)
            take = min(want, size - pos)
            if take == want and not self.pending:
                block = bytes(view[pos:pos + want])
                pos += want
            else:
                self.pending += view[pos:pos + take]
                pos += take
                if len(self.pending) < self.need:
                    continue
                block = bytes(self.pending)
                self.pending = bytearray()
            if self.state == 'header':
                self._header(block)
            else:
                self._extension(block)

    def _extension(self, data):
        kind, length = self.state
        data = data[:length]
        if kind == 'x':
            self.pax.update(_pax_records(data))
        elif kind == 'L':
            self.long_name = _cstr(data)
        elif kind == 'K':
            self.long_link = _cstr(data)
        self.state = 'header'
        self.need = BLOCK

    def _header(self, block):
        if not block[0] and block == _ZERO_BLOCK:
            self.zero_blocks += 1
            if self.zero_blocks == 2:
                self.ended = True
            return
        if self.zero_blocks:
            raise BackupError('tar wrote a lone zero block inside the archive')
        (name, mode, uid, gid, size, mtime, _chk, flag, linkname, magic, uname, gname, devmajor,
         devminor, prefix, _pad) = _USTAR.unpack(block)
        size = _octal(size)
        if flag in (b'x', b'L', b'K', b'g'):
            self.state = (flag.decode(), size)
            self.need = size + ((-size) % BLOCK)
            if size == 0:
                self.state = 'header'
                self.need = BLOCK
            return
        pax = self.pax
        if self.long_name is not None:
            path = self.long_name
        elif 'path' in pax:
            path = pax['path']
        else:
            path = name.partition(b'\0')[0]
            if prefix[0] and magic[:5] == b'ustar':
                path = prefix.partition(b'\0')[0] + b'/' + path
        kind = _TYPE_OF_FLAG.get(flag)
        if kind is None:
            raise BackupError('tar wrote a member of unexpected type %r for %s' % (flag, path))
        if pax:
            self.pax = {}
            if 'size' in pax:
                size = int(pax['size'])
            uid = int(pax['uid']) if 'uid' in pax else _octal(uid)
            gid = int(pax['gid']) if 'gid' in pax else _octal(gid)
            mtime = int(float(pax['mtime'])) if 'mtime' in pax else _octal(mtime)
            owner = self._text(pax['uname'] if 'uname' in pax else _cstr(uname))
            group = self._text(pax['gname'] if 'gname' in pax else _cstr(gname))
            xattr_names = sorted(k[13:] for k in pax if k.startswith('SCHILY.xattr.'))
        else:  # the common case: plain ustar fields, mostly repeated (cached by their raw bytes)
            uid, owner = self._id(uid, uname)
            gid, group = self._id(gid, gname)
            mtime = _octal(mtime)
            xattr_names = None
        text = path.decode('utf-8', 'surrogateescape').rstrip('/')
        mode = self._mode(mode)
        link = self.long_link
        self.long_name = self.long_link = None
        entry = {'path': '/' if text in ('', '.') else '/' + text, 'type': kind, 'mode': mode, 'uid': uid,
                 'gid': gid, 'owner': owner, 'group': group, 'mtime': mtime}
        if xattr_names:
            entry['xattrs'] = xattr_names
        totals = self.totals
        totals['entries'] += 1
        if kind == 'file':
            entry['size'] = size
            totals['files'] += 1
            totals['bytes'] += size
            self.entry = entry
            self.digest = hashlib.sha256()
            self.skip = 0
            if size:
                self.remaining = size
                self._pad = (-size) % BLOCK
            else:
                self._pad = 0
                self._finish_file()
            return
        if link is None:
            link = pax.get('linkpath', _cstr(linkname))
        if size and kind != 'hardlink':
            raise BackupError('tar wrote data for the %s member %s' % (kind, entry['path']))
        if kind == 'hardlink':
            target = '/' + link.decode('utf-8', 'surrogateescape')
            entry['link'] = target
            known = self.linked.get(target)
            if known is None:  # linked after the walk: hash the first name on disk
                try:
                    known = (sha256_file(target), os.lstat(target).st_size)
                except OSError as exc:
                    raise BackupError('cannot read %s: %s' % (target, exc.strerror or exc), path=target) from None
            entry['sha256'] = known[0]
            entry['size'] = known[1]
            totals['hardlinks'] += 1
        elif kind == 'dir':
            totals['dirs'] += 1
        elif kind == 'symlink':
            entry['target'] = link.decode('utf-8', 'surrogateescape')
            totals['symlinks'] += 1
        else:
            totals['special'] += 1
            if kind != 'fifo':
                entry['rdev'] = [_octal(devmajor), _octal(devminor)]
        self.emit(entry)

    def _text(self, raw):
        text = self.names.get(raw)
        if text is None:
            text = self.names[raw] = raw.decode('utf-8', 'surrogateescape')
        return text

    def _id(self, number, name):
        key = (number, name)
        found = self.ids.get(key)
        if found is None:
            found = self.ids[key] = (_octal(number), self._text(_cstr(name)))
        return found

    def _mode(self, raw):
        text = self.modes.get(raw)
        if text is None:
            text = self.modes[raw] = '%04o' % (_octal(raw) & 0o7777)
        return text

    def _finish_file(self):
        entry = self.entry
        entry['sha256'] = sha = self.digest.hexdigest()
        if entry['path'] in self.multi:
            self.linked[entry['path']] = (sha, entry['size'])
        if 'xattrs' in entry:
            self.emit(entry)
        else:  # the same JSON line as the encoder writes, without its per-call cost
            quoted = self.quoted
            owner = quoted.get(entry['owner']) or quoted.setdefault(entry['owner'], _json_str(entry['owner']))
            group = quoted.get(entry['group']) or quoted.setdefault(entry['group'], _json_str(entry['group']))
            self.emit(_FILE_LINE % (_json_str(entry['path']), entry['mode'], entry['uid'], entry['gid'], owner,
                                    group, entry['mtime'], entry['size'], sha))
        self.entry = self.digest = None
        self.skip = self._pad


_TEE = []


def _kernel_tee():
    """Linux tee(2) through ctypes: copy pipe to pipe inside the kernel, or None where it is missing.

    The function returned gives the byte count (0 at the end of the input), None when the kernel
    refuses the call (the caller then copies by itself), and raises _CompressorGone on a broken pipe.
    """
    if not _TEE:
        func = None
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            raw = libc.tee
            raw.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint]
            raw.restype = ctypes.c_ssize_t

            def func(src, dst):
                while True:
                    count = raw(src, dst, CHUNK, 0)
                    if count >= 0:
                        return count
                    err = ctypes.get_errno()
                    if err in (errno.ENOSYS, errno.EINVAL, errno.EPERM):
                        return None  # not available here (old kernel, seccomp filter)
                    if err != errno.EINTR:
                        raise _CompressorGone(OSError(err, os.strerror(err)))
        except (ImportError, OSError, AttributeError):
            func = None
        _TEE.append(func)
    return _TEE[0]


def _read_exact(fd, view):
    got = 0
    while got < len(view):
        count = os.readv(fd, [view[got:]])
        if not count:
            raise BackupError('tar output ended inside data it had already written')
        got += count
    return got


def _set_pipe_size(fd, size=CHUNK):
    try:
        import fcntl
        fcntl.fcntl(fd, getattr(fcntl, 'F_SETPIPE_SZ', 1031), size)
    except (ImportError, OSError, ValueError):
        pass  # best effort: a larger pipe only saves context switches


def _tar_messages(stderr):
    """Split tar's diagnostics into (errors, warnings), names given back their leading '/'."""
    errors, warnings = [], []
    for raw in stderr.decode('utf-8', 'replace').splitlines():
        line = raw.strip()
        prog, sep, text = line.partition(': ')
        if not sep or os.path.basename(prog) != 'tar' or text.startswith('Exiting with failure status'):
            continue
        head, sep, rest = text.partition(': ')
        if sep and not head.startswith('/') and os.path.lexists('/' + head):
            text = '/%s: %s' % (head, rest)
        (warnings if any(b in text for b in _BENIGN_TAR) else errors).append(text)
    return errors, warnings


def _write_list(list_path, roots, excluder, one_file_system, warnings, sparse):
    """Walk once: write the NUL separated name list for tar and return (counts, multi-linked files)."""
    counts = new_counts()
    multi = set()
    try:
        handle = open(list_path, 'wb', buffering=CHUNK)
    except OSError as exc:
        raise BackupError('cannot write %s: %s' % (list_path, exc.strerror or exc)) from None
    try:
        for path, st in walk(roots, excluder, one_file_system):
            kind = entry_type(st.st_mode)
            if kind in ('socket', 'unknown'):
                warnings.append('skipped %s %s (tar cannot archive it)' % (kind, path))
                continue
            try:
                handle.write((os.fsencode(path.lstrip('/')) or b'.') + b'\0')
            except OSError as exc:
                raise BackupError('cannot write %s: %s' % (list_path, exc.strerror or exc)) from None
            count_entry(counts, kind, st)
            if kind == 'file':
                if st.st_nlink > 1:
                    multi.add(path)
                if st.st_size >= st.st_blocks * 512 + 4096:  # at least a page not allocated: a hole
                    sparse.add(path)
        handle.flush()
    except OSError as exc:
        raise BackupError('cannot write %s: %s' % (list_path, exc.strerror or exc)) from None
    finally:
        try:
            handle.close()
        except OSError:
            pass
    return counts, multi


def _stream_tar(tool, list_path, multi, writer, emit, xattrs, warnings):
    """Run GNU tar on the name list; tee its stream into ``writer`` while building the manifest."""
    tee = _TarTee(emit, multi)
    env = dict(os.environ, LC_ALL='C')
    err_file = tempfile.TemporaryFile()
    proc = subprocess.Popen(tar_create_cmd(tool, list_path, xattrs), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=err_file, env=env)
    try:
        fd = proc.stdout.fileno()
        _set_pipe_size(fd)
        buf = bytearray(CHUNK)  # one buffer for the whole stream: no allocation (and page faults) per read
        view = memoryview(buf)
        dup = _kernel_tee() if writer.proc else None
        writer.flush()
        while True:
            if dup:
                count = dup(fd, writer.fd)
                if count is None:
                    dup = None  # refused before anything was copied: copy by hand from here on
                    continue
                if count:
                    count = _read_exact(fd, view[:count])
            else:
                count = os.readv(fd, [buf])
                if count:
                    writer.write_large(view[:count])  # written out in full before the buffer is reused
            if not count:
                break
            tee.feed(view[:count])
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    err_file.seek(0)
    errors, tar_warnings = _tar_messages(err_file.read())
    err_file.close()
    warnings.extend(tar_warnings)
    if errors or (rc not in (0, 1) and not tar_warnings):
        raise BackupError('cannot archive: %s' % ('; '.join(errors[:10]) or 'tar exited with status %d' % rc))
    if not tee.ended:
        raise BackupError('tar stopped before the end of the archive (exit %d)' % rc)
    return tee.totals


# --------------------------------------------------------------------------- reading back

_SCAN_JSON = json.JSONDecoder().scan_once  # the C scanner json.loads uses, without its per-call overhead


def _json_line(text):
    """One JSON value filling the line (as json.loads would accept it; its error message otherwise)."""
    try:
        obj, end = _SCAN_JSON(text, 0)
    except StopIteration:
        return json.loads(text)  # leading blanks, or not JSON: json.loads accepts it or says why
    if end != len(text) and text[end:].strip():
        return json.loads(text)  # raises 'Extra data'
    return obj


def iter_manifest(path, limit=None):
    """Yield the manifest's header, then its entries; raises BackupError on any damage.

    The manifest must be a regular file of at most ``limit`` bytes (default MANIFEST_LIMIT).
    """
    fd, _st = open_store_file(path, 'manifest', MANIFEST_LIMIT if limit is None else limit)
    with os.fdopen(fd, 'rb') as handle:
        first = True
        ended = False
        for lineno, line in enumerate(handle, 1):
            if ended:
                raise BackupError('manifest %s has data after its end marker (line %d)' % (path, lineno))
            try:
                obj = _json_line(line.decode('utf-8', 'surrogateescape'))
            except ValueError as exc:
                raise BackupError('manifest %s is damaged at line %d: %s' % (path, lineno, exc)) from None
            if first:
                if not isinstance(obj, dict) or obj.get('format') != FORMAT_MANIFEST:
                    raise BackupError('manifest %s does not start with an %s header' % (path, FORMAT_MANIFEST))
                first = False
                yield obj
                continue
            if not isinstance(obj, dict):
                raise BackupError('manifest %s is damaged at line %d' % (path, lineno))
            if obj.get('end'):
                ended = True
                continue
            if obj.get('path').__class__ is not str or obj.get('type').__class__ is not str:
                raise BackupError('manifest %s is damaged at line %d: no path or type' % (path, lineno))
            yield obj
        if first or not ended:
            raise BackupError('manifest %s is truncated (no end marker)' % path)


def check_files(snapshot_dir, record):
    """Re-hash archive, manifest and package state against the record."""
    results = {}
    for key in ('archive', 'manifest', 'packages'):
        entry = record.get(key)
        if not entry:
            continue
        path = os.path.join(snapshot_dir, entry['name'])
        if not os.path.lexists(path):
            raise BackupError('%s file %s is missing' % (key, path))
        fd, st = open_store_file(path, key)
        try:
            actual = sha256_fd(fd, st.st_size)
        finally:
            os.close(fd)
        results[key] = {'path': path, 'expected_sha256': entry.get('sha256'), 'sha256': actual,
                        'ok': actual == entry.get('sha256')}
    return results


def _decompress_popen(archive_path, kind, stdout):
    cmd = decompressor_cmd(kind)
    fd, _st = open_store_file(archive_path, 'archive')
    handle = os.fdopen(fd, 'rb')
    if not cmd:
        return None, handle
    try:
        proc = subprocess.Popen(cmd, stdin=handle, stdout=stdout, stderr=subprocess.PIPE)
    finally:
        handle.close()
    return proc, None


def tar_extract_cmd(root, xattrs=True, same_owner=True):
    cmd = [which('tar') or 'tar', '-x', '-f', '-', '-C', root, '--numeric-owner', '--preserve-permissions']
    if same_owner:
        cmd.append('--same-owner')
    else:
        cmd.append('--no-same-owner')
    if xattrs and _tar_has_xattrs():
        cmd += ['--xattrs', '--xattrs-include=*']
    return cmd


_XATTR_SUPPORT = []


def _tar_has_xattrs():
    if not _XATTR_SUPPORT:
        try:
            out = subprocess.run([which('tar') or 'tar', '--help'], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, check=False).stdout
        except OSError:
            out = b''
        _XATTR_SUPPORT.append(b'--xattrs' in out)
    return _XATTR_SUPPORT[0]


class MemberScan(object):
    """The one member check of verify and restore over a tar stream: ``feed`` chunks, then ``close``.

    A strict tar reader (backup_tarscan.TarReader: only the POSIX subset the snapshot writes, every
    header on which two tar readers could differ refused) hands each member to MemberCheck, which
    matches it with the manifest entry at the same position and applies the rules that keep a restore
    inside its root. ``extra``: a further per-member check (restore: the target on disk).
    """

    def __init__(self, manifest_path, allow_devices=True, extra=None):
        entries = iter_manifest(manifest_path)
        next(entries)
        self.check = MemberCheck(entries, allow_devices=allow_devices, extra=extra)
        self.reader = TarReader(self.check)
        self.feed = self.reader.feed

    @property
    def count(self):
        return self.check.count

    def close(self):
        self.reader.close()
        self.check.finish()


def refused_error(exc):
    """BackupError for an ArchiveRefused (the member name in an escaped form)."""
    details = {}
    if exc.member is not None:
        details['member'] = shown(exc.member)
    return BackupError(exc.msg, **details)


def _pump(src_fd, dst_fd, feed):
    """Read ``src_fd`` to its end; every chunk is first checked by ``feed``, then written to ``dst_fd``.

    The check comes first, so a member that is refused never reaches the process behind ``dst_fd``.
    """
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        count = os.readv(src_fd, [buf])
        if not count:
            return
        chunk = view[:count]
        feed(chunk)
        if dst_fd is not None:
            try:
                while len(chunk):
                    chunk = chunk[os.write(dst_fd, chunk):]
            except OSError as exc:  # EPIPE: tar stopped early; its exit status and message tell why
                raise _CompressorGone(exc) from None


def _stop(*procs):
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.kill()
    for proc in procs:
        if proc is not None:
            proc.wait()


def extract(archive_path, kind, root, xattrs=True, names=None, track=None, inspect=None):
    """Pipe the archive through the decompressor into GNU tar -x; raise BackupError on failure.

    ``names``: a file of NUL separated member names; only those members are extracted.
    ``track``: called with each process started (so another thread can stop the extraction).
    ``inspect``: a MemberScan; the stream passes through it on its way to tar, and tar never gets a
    chunk that holds a refused member (verify: the bytes checked are the bytes extracted).
    GNU tar runs with ``LC_ALL=C`` so it writes names as the archive's bytes (no charset conversion).
    """
    is_root = os.geteuid() == 0
    cmd = tar_extract_cmd(root, xattrs, same_owner=is_root)
    if names:
        cmd += ['--no-recursion', '--null', '--no-unquote', '--verbatim-files-from', '-T', names]
    err_file = tempfile.TemporaryFile()
    tar = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=err_file, stderr=err_file,
                           env=dict(os.environ, LC_ALL='C'))
    dec = None
    refused = None
    try:
        if track:
            track(tar)
        if inspect is None:
            dec, raw = _decompress_popen(archive_path, kind, tar.stdin)
        else:
            dec, raw = _decompress_popen(archive_path, kind, subprocess.PIPE)
        if dec and track:
            track(dec)
        src = raw if raw is not None else (dec.stdout if inspect is not None else None)
        at_end = False
        if src is not None:
            with src:
                try:
                    _pump(src.fileno(), tar.stdin.fileno(), inspect.feed if inspect is not None else _ignore)
                    at_end = True
                    if inspect is not None:
                        inspect.close()
                except ArchiveRefused as exc:
                    refused = exc
                except _CompressorGone:
                    pass  # tar stopped early; its exit status and message tell why
        if refused is not None:
            _stop(tar)
            if dec is not None and at_end:  # the stream ended early: the decompressor's error says why
                dec.wait()
                if dec.returncode != 0:
                    raise BackupError('decompressing %s failed: %s' % (
                        archive_path, dec.stderr.read().decode('utf-8', 'replace').strip() or 'exit %d'
                        % dec.returncode))
            _stop(dec)
            raise refused_error(refused)
        tar.stdin.close()
        tar.stdin = None
        tar.wait()
        dec_err = b''
        if dec:
            dec_err = dec.stderr.read()
            dec.wait()
    except BaseException:
        _stop(tar, dec)
        err_file.close()
        raise
    err_file.seek(0)
    tar_err = err_file.read()
    err_file.close()
    tar_first = tar.returncode != 0 and dec is not None and dec.returncode == -signal.SIGPIPE
    if dec and dec.returncode != 0 and not tar_first:  # (a decompressor killed by SIGPIPE: tar stopped first)
        raise BackupError('decompressing %s failed: %s' % (archive_path, dec_err.decode('utf-8', 'replace').strip()))
    if tar.returncode != 0:
        raise BackupError('tar could not extract %s into %s: %s' % (
            archive_path, root, tar_err.decode('utf-8', 'replace').strip()[-2000:]))


def _ignore(_chunk):
    return None


def compare_entry(entry, path, check_owner=True, check_mtime=True, hash_content=True, st=None):
    """Differences between a manifest entry and the filesystem object at ``path`` (list of str).

    ``st``: the object's lstat result when the caller has it already.
    """
    if st is None:
        try:
            st = os.lstat(path)
        except OSError:
            return ['missing']
    problems = []
    expected = entry['type']
    actual = entry_type(st.st_mode)
    if expected == 'hardlink':
        expected = 'file'
    if actual != expected:
        return ['type %s, expected %s' % (actual, expected)]
    mode = '%04o' % stat.S_IMODE(st.st_mode)
    if actual != 'symlink' and mode != entry['mode']:
        problems.append('mode %s, expected %s' % (mode, entry['mode']))
    if check_owner and (st.st_uid != entry['uid'] or st.st_gid != entry['gid']):
        problems.append('owner %d:%d, expected %d:%d' % (st.st_uid, st.st_gid, entry['uid'], entry['gid']))
    if actual == 'file':
        if st.st_size != entry['size']:
            problems.append('size %d, expected %d' % (st.st_size, entry['size']))
        elif hash_content:
            try:
                digest = sha256_file(path, st.st_size, follow=False)
            except (OSError, IOError) as exc:
                problems.append('unreadable: %s' % exc)
            else:
                if digest != entry['sha256']:
                    problems.append('content sha256 %s, expected %s' % (digest, entry['sha256']))
        if check_mtime and int(st.st_mtime) != entry['mtime']:
            problems.append('mtime %d, expected %d' % (int(st.st_mtime), entry['mtime']))
    elif actual == 'symlink':
        target = os.readlink(path)
        if target != entry.get('target'):
            problems.append('symlink target %r, expected %r' % (target, entry.get('target')))
    elif actual in ('chardev', 'blockdev'):
        if [os.major(st.st_rdev), os.minor(st.st_rdev)] != entry.get('rdev'):
            problems.append('device number differs')
    return problems


def _bad_entry(manifest_path, entry, exc):
    """BackupError for a manifest entry that lacks a field or holds one of the wrong type."""
    return BackupError('manifest %s: the entry for %r is malformed (%s: %s)' % (
        manifest_path, entry.get('path'), exc.__class__.__name__, exc))


def _relocate(path, root):
    if root in ('/', ''):
        return path
    return os.path.join(root, path.lstrip('/'))


def _walk_extracted(top, roots):
    """Every entry under ``top`` in manifest order, as the absolute path it would restore to."""
    ancestors = set()
    for root in roots:
        parts = [p for p in root.split('/') if p]
        for i in range(1, len(parts)):
            ancestors.add('/' + '/'.join(parts[:i]))
    cut = len(top.rstrip('/'))
    for path, st in walk([top], Excluder([])):
        if path == top:
            continue
        original = path[cut:]
        yield original, st, original in ancestors and stat.S_ISDIR(st.st_mode)


def verify_snapshot(snapshot_dir, tmpdir=None, keep_temp=False, record_result=True,
                    check_mode=False, space_check=True, record_key=None):
    """Re-hash, test-extract into a temporary directory and compare every entry with the manifest.

    ``record_key``: the controller's record key; a record without a valid signature then fails (raises).
    """
    started = time.time()
    record, authenticated = open_record(snapshot_dir, record_key_bytes(record_key))
    result = {'snapshot_id': record['snapshot_id'], 'label': record['label'], 'snapshot_dir': snapshot_dir,
              'archive_sha256': record['archive']['sha256'], 'started': iso(utc_now()),
              'archive_ok': False, 'manifest_ok': False, 'packages_ok': None, 'extract_ok': False,
              'entries_expected': record['totals']['entries'], 'entries_compared': 0,
              'files_hashed': 0, 'mismatches': [], 'mismatch_count': 0, 'missing_count': 0,
              'extra_count': 0, 'owner_checked': os.geteuid() == 0, 'members_checked': 0,
              'record_authenticated': authenticated, 'record_signed': isinstance(record.get('signature'), dict)}
    failures = []
    checker = _FileCheck(snapshot_dir, record)  # re-hashes while the test extraction runs
    try:
        _restore_test(snapshot_dir, record, tmpdir, keep_temp, result, failures, space_check, checker)
    finally:
        failures[:0] = checker.wait(result)
    result['verdict'] = 'passed' if not failures else 'failed'
    result['passed'] = not failures
    result['failures'] = failures
    result['finished'] = iso(utc_now())
    result['duration'] = round(time.time() - started, 3)
    changed = False
    if record_result and not check_mode:
        doc = {'format': FORMAT_VERIFY, 'snapshot_id': record['snapshot_id'],
               'archive_sha256': record['archive']['sha256'], 'verdict': result['verdict'],
               'verified': result['finished'], 'entries_compared': result['entries_compared'],
               'failures': failures[:DETAIL_LIMIT]}
        path = os.path.join(snapshot_dir, VERIFY_NAME)
        old = None
        if os.path.lexists(path):
            try:
                old = read_store_json(path, 'verify record', VERIFY_LIMIT)
            except BackupError:
                old = None  # rewritten below
        same = (isinstance(old, dict) and old.get('verdict') == doc['verdict']
                and old.get('archive_sha256') == doc['archive_sha256'])
        if not same:
            write_json_atomic(path, doc)
            changed = True
        result['record_path'] = path
    return changed, result


class _FileCheck(object):
    """``check_files`` in a thread; ``wait`` fills the result's hash fields and returns the failures."""

    def __init__(self, snapshot_dir, record):
        self.lock = threading.Lock()
        self.procs = []
        self.stopped = False
        self.failures = None
        self.task = _Background(self._check, snapshot_dir, record)

    def _check(self, snapshot_dir, record):
        try:
            hashes = check_files(snapshot_dir, record)
        except BaseException:
            self._stop()
            raise
        if not all(value['ok'] for value in hashes.values()):
            self._stop()
        return hashes

    def track(self, proc):
        """Register a process of the test extraction; it is killed as soon as a hash does not match."""
        with self.lock:
            self.procs.append(proc)
            if self.stopped:
                proc.kill()

    def _stop(self):
        with self.lock:
            self.stopped = True
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()

    def wait(self, result):
        if self.failures is None:
            failures = []
            try:
                hashes = self.task.result()  # anything but these (a bug) propagates: never a pass
            except BackupError as exc:
                hashes = {}
                failures.append(exc.msg)
            except (OSError, IOError) as exc:
                hashes = {}
                failures.append('re-hashing the snapshot files failed: %s' % exc)
            result['hashes'] = hashes
            result['archive_ok'] = bool(hashes.get('archive', {}).get('ok'))
            result['manifest_ok'] = bool(hashes.get('manifest', {}).get('ok'))
            if 'packages' in hashes:
                result['packages_ok'] = hashes['packages']['ok']
            for key, value in sorted(hashes.items()):
                if not value['ok']:
                    failures.append('%s %s sha256 mismatch: %s, recorded %s' % (
                        key, value['path'], value['sha256'], value['expected_sha256']))
            self.failures = failures
        return self.failures


def _restore_test(snapshot_dir, record, tmpdir, keep_temp, result, failures, space_check, checker):
    """Extract into a temporary directory and compare it with the manifest, once ``checker`` passed.

    The extraction runs while ``checker`` re-hashes archive and manifest; when a hash does not match,
    the extraction's outcome is discarded (the hash failure is the verdict) and nothing is compared.
    """
    manifest_path = os.path.join(snapshot_dir, record['manifest']['name'])
    archive_path = os.path.join(snapshot_dir, record['archive']['name'])
    need = record['totals']['bytes'] + record['totals']['entries'] * 4096
    base = tmpdir or _fast_tmp(need) or snapshot_dir
    result['temp_base'] = base
    if space_check:
        if free_bytes(base) < need:
            failures.append('not enough free space in %s for the restore test: %d bytes available, need %d'
                            % (base, free_bytes(base), need))
            return
    temp = tempfile.mkdtemp(prefix='.itsop-verify-', dir=base)
    result['temp_dir'] = temp if keep_temp else None
    try:
        with _TermGuard():
            extract_error = None
            try:
                # the same member check as a restore's (MemberScan), on the bytes tar extracts
                scan = MemberScan(manifest_path, allow_devices=True)
                extract(archive_path, compression_of(record['archive']['name']), temp,
                        xattrs=record.get('xattrs', True), track=checker.track, inspect=scan)
                result['members_checked'] = scan.count
            except BackupError as exc:
                extract_error = exc.msg
            if checker.wait(result):
                return
            if extract_error:
                failures.append(extract_error)
                return
            result['extract_ok'] = True
            _compare_tree(manifest_path, temp, result, failures)
    finally:
        if not keep_temp:
            shutil.rmtree(temp, ignore_errors=True)


def _mem_available():
    try:
        with open('/proc/meminfo') as handle:
            for line in handle:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, IOError, ValueError):
        pass
    return 0


def _fast_tmp(need):
    """The shared-memory tmpfs when it is writable and the tree is small next to free memory, else None.

    Creating many small files is far cheaper on tmpfs than on most disks; the extraction is the same
    GNU tar run either way. Only used when the tree needs under a quarter of the available memory.
    """
    shm = os.path.join('/dev', 'shm')
    if not (os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK)):
        return None
    try:
        if free_bytes(shm) < need * 1.2 or need * 4 > _mem_available():
            return None
    except OSError:
        return None
    return shm


def _compare_tree(manifest_path, temp, result, failures):
    owner = result['owner_checked']
    details = result['mismatches']
    try:
        entries = iter_manifest(manifest_path)
        header = next(entries)
        disk = _walk_extracted(temp, header.get('paths') or [])
        cur = _next_disk(disk)
        for entry in entries:
            path = entry['path']
            if cur is not None and cur[0] != path:  # the common case (same order) needs no sort keys
                key = path_key(path)
                while cur is not None and cur[0] != path and path_key(cur[0]) < key:
                    if not cur[2]:
                        result['extra_count'] += 1
                        if len(details) < DETAIL_LIMIT:
                            details.append({'path': cur[0], 'problems': ['not in the manifest']})
                    cur = _next_disk(disk)
            if cur is None or cur[0] != path:
                result['missing_count'] += 1
                if len(details) < DETAIL_LIMIT:
                    details.append({'path': path, 'problems': ['missing after extraction']})
                continue
            is_file = entry['type'] in ('file', 'hardlink')
            try:
                problems = compare_entry(entry, temp + path, check_owner=owner, check_mtime=is_file, st=cur[1])
            except (KeyError, TypeError, ValueError) as exc:
                raise _bad_entry(manifest_path, entry, exc) from None
            result['entries_compared'] += 1
            if is_file:
                result['files_hashed'] += 1
            if problems:
                result['mismatch_count'] += 1
                if len(details) < DETAIL_LIMIT:
                    details.append({'path': entry['path'], 'problems': problems})
            cur = _next_disk(disk)
        while cur is not None:
            if not cur[2]:
                result['extra_count'] += 1
                if len(details) < DETAIL_LIMIT:
                    details.append({'path': cur[0], 'problems': ['not in the manifest']})
            cur = _next_disk(disk)
    except BackupError as exc:
        failures.append(exc.msg)
        return
    if result['entries_compared'] != result['entries_expected'] and not result['missing_count']:
        failures.append('manifest lists %d entries, the record says %d' % (
            result['entries_compared'], result['entries_expected']))
    for key, text in (('missing_count', 'entries missing after extraction'),
                      ('mismatch_count', 'entries differ from the manifest'),
                      ('extra_count', 'extracted entries not in the manifest')):
        if result[key]:
            failures.append('%d %s' % (result[key], text))


def _next_disk(iterator):
    return next(iterator, None)


# --------------------------------------------------------------------------- restore

def _unsafe_name(name):
    if not name or name.startswith('/'):
        return 'absolute path'
    parts = name.split('/')
    if '..' in parts:
        return "contains '..'"
    return None


def scan_archive(archive_path, kind, manifest_path, root, allow_devices=False):
    """Check every member before anything is written; raise BackupError naming the first bad one.

    The stream is read by the same strict reader and member check verify uses (MemberScan): members
    must match the manifest one to one, stay inside ``root`` (no absolute names, no ``..``, nothing
    below a symlink member, no hard link to or through a symlink member) and be of an allowed type;
    any header two tar readers could read differently is refused. For an alternate root, the target
    on disk is checked too (_DiskCheck): no parent of a name, no directory and no hard-link target
    (nor any of its parents) may be a symlink that leads outside the root.
    """
    real_root = os.path.realpath(root)
    extra = _DiskCheck(root, real_root) if real_root != '/' else None
    scan = MemberScan(manifest_path, allow_devices=allow_devices, extra=extra)
    proc, raw = _decompress_popen(archive_path, kind, subprocess.PIPE)
    stream = proc.stdout if proc else raw
    refused = None
    at_end = False
    try:
        _pump(stream.fileno(), None, scan.feed)
        at_end = True
        if proc:
            proc.wait()  # the stream ended: the decompressor has exited, or is about to
        scan.close()
    except ArchiveRefused as exc:
        refused = exc
    finally:
        stream.close()
        if proc:
            _stop(proc)
    # only when the stream ended by itself does the decompressor's exit status say something (a refusal
    # before the end closes its pipe: it then dies of SIGPIPE or is killed)
    if proc and at_end and proc.returncode != 0:
        raise BackupError('decompressing %s failed: %s' % (
            archive_path, proc.stderr.read().decode('utf-8', 'replace').strip() or 'exit %d' % proc.returncode))
    if refused is not None:
        raise refused_error(refused)
    return scan.count


class _DiskCheck(object):
    """Restore to an alternate root: refuse a member whose way into the root leaves it through a symlink.

    Checks every parent directory of the member's name (and the name itself for a directory, which GNU
    tar would otherwise follow and re-own) and, for a hard link, its target and all of the target's
    parents: none may be a symlink whose resolution (every link followed) ends outside the root.
    Results are cached per directory, so a tree costs one lstat per distinct directory.
    """

    def __init__(self, root, real_root):
        self.root = os.fsencode(root)
        self.real_root = os.fsencode(real_root)
        self.inside = self.real_root.rstrip(b'/') + b'/'
        self.checked = set()

    def __call__(self, member):
        self._walk(member.name, member.type == 'dir', member, False)
        if member.type == 'hardlink':
            self._walk(member.link, True, member, True)

    def _walk(self, name, inclusive, member, is_target):
        pos = name.find(b'/')
        while True:
            if pos == -1:
                if not inclusive:
                    return
                head = name
            else:
                head = name[:pos]
            if head not in self.checked:
                self.checked.add(head)
                full = self.root + b'/' + head
                if os.path.islink(full):
                    real = os.path.realpath(full)
                    if real != self.real_root and not real.startswith(self.inside):
                        what = 'archive member %r' % shown(member.name)
                        if is_target:
                            what = 'hard link %r -> %r' % (shown(member.name), shown(member.link))
                        raise ArchiveRefused('refusing %s: %s in the target is a symlink leading outside %s'
                                             % (what, shown(full), shown(self.root)), member.name)
            if pos == -1:
                return
            pos = name.find(b'/', pos + 1)


def restore_snapshot(snapshot_dir, root='/', allow_devices=False, check_mode=False, force=False,
                     record_key=None):
    """Restore to ``root``; returns (changed, result). Nothing is written in check mode.

    ``record_key``: the controller's record key; the record must then carry a valid signature.
    """
    started = time.time()
    record, authenticated = open_record(snapshot_dir, record_key_bytes(record_key))
    root = os.path.normpath(os.path.abspath(root))
    hashes = check_files(snapshot_dir, record)
    for key in ('archive', 'manifest'):
        if not hashes[key]['ok']:
            raise BackupError('%s %s sha256 mismatch: %s, recorded %s; refusing to restore' % (
                key, hashes[key]['path'], hashes[key]['sha256'], hashes[key]['expected_sha256']))
    archive_path = hashes['archive']['path']
    manifest_path = hashes['manifest']['path']
    kind = compression_of(record['archive']['name'])
    members = scan_archive(archive_path, kind, manifest_path, root, allow_devices=allow_devices)
    if not check_mode:
        ensure_private_dir(root)

    owner = os.geteuid() == 0
    created, modified = [], []
    counts = {'create': 0, 'modify': 0, 'unchanged': 0}
    sparse_info = record.get('sparse') if isinstance(record.get('sparse'), dict) else {}
    sparse_known = set(p for p in sparse_info.get('paths') or () if isinstance(p, str))
    sparse_todo = []
    # Only the members that differ are extracted, so files that already match the snapshot are
    # never touched (in use, or bind-mounted like /etc/hostname in a container).
    fd, names = tempfile.mkstemp(prefix='itsop-restore-', suffix='.names')
    try:
        with os.fdopen(fd, 'wb', buffering=CHUNK) as handle:
            entries = iter_manifest(manifest_path)
            next(entries)
            for entry in entries:
                try:
                    problems = compare_entry(entry, _relocate(entry['path'], root), check_owner=owner,
                                             check_mtime=False)
                except (KeyError, TypeError, ValueError) as exc:
                    raise _bad_entry(manifest_path, entry, exc) from None
                if sparse_known and entry['path'] in sparse_known and (problems or force):
                    sparse_todo.append(entry['path'])
                if not problems:
                    counts['unchanged'] += 1
                    continue
                handle.write((os.fsencode(entry['path'].lstrip('/')) or b'.') + b'\0')
                if problems == ['missing']:
                    counts['create'] += 1
                    if len(created) < DETAIL_LIMIT * 20:
                        created.append(entry['path'])
                else:
                    counts['modify'] += 1
                    if len(modified) < DETAIL_LIMIT * 20:
                        modified.append({'path': entry['path'], 'problems': problems})
        changed = bool(counts['create'] or counts['modify']) or force
        if changed and not check_mode:
            with _TermGuard():
                # the stream passes the same member check again on its way to tar: the bytes extracted
                # are the bytes checked, even if the archive file changed since the scan
                extract(archive_path, kind, root, xattrs=record.get('xattrs', True),
                        names=None if force else names,
                        inspect=MemberScan(manifest_path, allow_devices=allow_devices))
    finally:
        os.unlink(names)
    result = {'snapshot_id': record['snapshot_id'], 'label': record['label'], 'snapshot_dir': snapshot_dir,
              'root': root, 'archive_sha256': record['archive']['sha256'], 'archive_ok': True,
              'members_checked': members, 'counts': counts, 'created': created, 'modified': modified,
              'restored': bool(changed and not check_mode),
              'record_authenticated': authenticated, 'record_signed': isinstance(record.get('signature'), dict),
              'duration': round(time.time() - started, 3)}
    sparse = sparse_info.get('count', 0)
    result['sparse_files'] = sparse
    result['sparse_restored'] = 0
    if sparse_todo and changed and not check_mode:
        result['sparse_restored'] = _dig_holes(sparse_todo, root)
    if sparse and changed:
        dense = len(sparse_todo) - result['sparse_restored']
        text = ('%d file(s) of the snapshot were sparse on the source (e.g. %s); '
                % (sparse, (sparse_info.get('paths') or ['?'])[0]))
        if check_mode:
            text += '%d of those would be restored, their holes punched again with fallocate --dig-holes' % (
                len(sparse_todo))
        else:
            text += '%d restored with their holes punched again (fallocate --dig-holes)' % result['sparse_restored']
            if dense:
                text += ', %d restored fully allocated (fallocate missing or refused)' % dense
        if sparse > len(sparse_known):
            text += '; the record names only the first %d, others are restored fully allocated' % len(sparse_known)
        result['notes'] = [text]
    before = ''.join('%s: %s\n' % (m['path'], '; '.join(m['problems'])) for m in modified)
    before += ''.join('%s: missing\n' % p for p in created)
    after = ''.join('%s: as in snapshot %s\n' % (p, record['snapshot_id'])
                    for p in [m['path'] for m in modified] + created)
    result['diff'] = {'before_header': root, 'after_header': 'snapshot %s' % record['snapshot_id'],
                      'before': before, 'after': after}
    return changed, result


def _dig_holes(paths, root):
    """Make restored sparse files sparse again (zero ranges deallocated, content and mtime unchanged)."""
    tool = which('fallocate')
    if not tool:
        return 0
    done = 0
    for path in paths:
        full = _relocate(path, root)
        try:
            st = os.lstat(full)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        proc = subprocess.run([tool, '--dig-holes', full], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              check=False)
        try:
            os.utime(full, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        except OSError:
            pass
        if proc.returncode == 0:
            done += 1
    return done


# --------------------------------------------------------------------------- retention

def _verified(snapshot_dir, record):
    path = os.path.join(snapshot_dir, VERIFY_NAME)
    if not os.path.lexists(path):
        return False
    try:
        doc = read_store_json(path, 'verify record', VERIFY_LIMIT)
    except BackupError:
        return False
    return (isinstance(doc, dict) and doc.get('verdict') == 'passed'
            and doc.get('archive_sha256') == record['archive']['sha256'])


def prune_snapshots(dest, label, keep_days=None, keep_copies=None, incomplete_age_hours=24,
                    check_mode=False, now=None):
    """Remove snapshots of ``label`` older than keep_days or beyond keep_copies (never the newest verified)."""
    validate_label(label)
    now = time.time() if now is None else now
    found = snapshot_dirs(dest, label)
    newest_verified = None
    for record, path in reversed(found):
        if _verified(path, record):
            newest_verified = record['snapshot_id']
            break
    removed, kept = [], []
    newest_first = list(reversed(found))
    for index, (record, path) in enumerate(newest_first):
        age_days = (now - record.get('created_epoch', now)) / 86400.0
        too_old = keep_days is not None and age_days > keep_days
        too_many = keep_copies is not None and index >= keep_copies
        sid = record['snapshot_id']
        if (too_old or too_many) and sid != newest_verified:
            removed.append(sid)
            if not check_mode:
                shutil.rmtree(path)
        else:
            kept.append(sid)
    stale = []
    base = os.path.join(dest, label)
    if os.path.isdir(base):
        for name in sorted(os.listdir(base)):
            path = os.path.join(base, name)
            if name.startswith(INCOMPLETE_PREFIX) and os.path.isdir(path):
                if now - os.lstat(path).st_mtime > incomplete_age_hours * 3600:
                    stale.append(name)
                    if not check_mode:
                        shutil.rmtree(path, ignore_errors=True)
    return bool(removed or stale), {'label': label, 'removed': removed, 'kept': kept,
                                    'protected': newest_verified, 'removed_incomplete': stale}
