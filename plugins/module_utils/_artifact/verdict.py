# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verdicts of artifact checks and the errors that fail them.

Every check of ``itsop.change.artifact_verify`` ends in one of the strings ``pass``, ``fail``
and ``not_requested``; a check that cannot be carried out is a failure, never a pass.
"""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

VERDICT_OK = 'pass'
VERDICT_FAIL = 'fail'
VERDICT_NOT_REQUESTED = 'not_requested'


class VerifyError(Exception):
    """An option value that cannot be used (bad digest notation, bad size)."""


class UnpackError(Exception):
    """An artifact (or a member) could not be unpacked completely; the message says where."""
