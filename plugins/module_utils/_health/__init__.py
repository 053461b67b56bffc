# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private backend of health_watch (one idea per file): ``samplers`` (one reading of HTTP, the systemd unit,
its journal and the host's resources), ``breach`` (when to stop early, when a breach first showed) and
``watch`` (the options checked and the sampling loop). Statistics and thresholds over the samples are
``module_utils/health.py``."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type
