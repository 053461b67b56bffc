# -*- coding: utf-8 -*-
# Copyright: (c) 2026, itsop.change contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The attributes every itsop.change module shares; a module states only where it differs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # List it before ``ansible.builtin.action_common_attributes`` (which gives the descriptions) in
    # ``extends_documentation_fragment``: the first fragment's values are kept. A module's own
    # ``attributes:`` entries are merged over these (its ``details`` or a different ``support`` win).
    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
'''
