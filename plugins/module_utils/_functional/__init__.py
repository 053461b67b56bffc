# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private backend of functional_check (one idea per file): ``spec`` (the options of one check and what is
wrong with them), one file per check type (``http``, ``service``, ``port``, ``package``, ``command``), each
returning what was expected, what was found and a one-line message, and ``run`` (every check in turn,
retried until it passes or its attempts are spent)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type
