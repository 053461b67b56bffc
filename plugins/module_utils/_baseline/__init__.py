# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private backend of security_baseline_info: the collectors of a host's security state (one idea per file).

``sockets`` (listening TCP/UDP sockets from /proc), ``units`` (enabled systemd units), ``files`` (setuid and
world-writable files, the watched files), ``accounts`` (uid 0 accounts, sudoers), ``sshd`` (effective sshd
configuration) and ``snapshot`` (the options checked and the snapshot assembled). The comparison with a
baseline is ``module_utils/security_compare.py``."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type
