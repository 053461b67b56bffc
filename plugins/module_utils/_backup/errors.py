# -*- coding: utf-8 -*-
# Copyright: (c) 2025, itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Errors of the backup backend: the one exception modules report, and a stopped compressor."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


class BackupError(Exception):
    """A failure with a message fit for ``fail_json`` and optional structured details."""

    def __init__(self, msg, **details):
        super(BackupError, self).__init__(msg)
        self.msg = msg
        self.details = details


class CompressorGone(Exception):
    pass
