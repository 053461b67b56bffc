# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A file check: the path exists on the host (the change request's ``{type: file, path}``).

Read-only (``lstat``); the result names what is there (file, directory, link, other), its mode, owner
and size, so the evidence shows what was found, not only whether something was."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import stat

from ansible.module_utils.common.text.converters import to_native

KINDS = ((stat.S_ISREG, 'file'), (stat.S_ISDIR, 'directory'), (stat.S_ISLNK, 'link'))


def file_check(check):
    path = check['path']
    try:
        st = os.lstat(path)
    except (OSError, IOError) as exc:
        return dict(passed=False, expected=dict(path=path, exists=True),
                    actual=dict(exists=False, error=to_native(exc.strerror or exc)),
                    message='%s does not exist (%s)' % (path, to_native(exc.strerror or exc)))
    kind = next((name for test, name in KINDS if test(st.st_mode)), 'other')
    actual = dict(exists=True, kind=kind, mode='%04o' % stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
                  size=st.st_size)
    return dict(passed=True, expected=dict(path=path, exists=True), actual=actual,
                message='%s exists (%s, mode %s)' % (path, kind, actual['mode']))
