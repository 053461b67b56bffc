# -*- coding: utf-8 -*-
# Copyright (c) itsop.change engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Listening TCP and UDP sockets with their owning process, read from /proc (no ss needed)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import os
import socket


_TCP_LISTEN = '0A'
_UDP_UNCONN = '07'


def _hex_addr(text, v6):
    raw = bytes.fromhex(text)
    if v6:
        # four little-endian 32-bit words
        raw = b''.join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
        return socket.inet_ntop(socket.AF_INET6, raw)
    return socket.inet_ntop(socket.AF_INET, raw[::-1])


def _socket_owners():
    owners = {}
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        fd_dir = '/proc/%s/fd' % pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith('socket:['):
                inode = target[8:-1]
                if inode not in owners:
                    try:
                        with open('/proc/%s/comm' % pid) as fh:
                            comm = fh.read().strip()
                    except OSError:
                        comm = None
                    owners[inode] = (int(pid), comm)
    return owners


def listening_sockets():
    owners = _socket_owners()
    out = []
    for proto in ('tcp', 'tcp6', 'udp', 'udp6'):
        path = '/proc/net/%s' % proto
        try:
            with open(path) as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            state = parts[3]
            if proto.startswith('tcp') and state != _TCP_LISTEN:
                continue
            if proto.startswith('udp') and state != _UDP_UNCONN:
                continue
            addr, port = parts[1].split(':')
            pid, comm = owners.get(parts[9], (None, None))
            out.append(dict(proto=proto.rstrip('6'), family='ipv6' if proto.endswith('6') else 'ipv4',
                            address=_hex_addr(addr, proto.endswith('6')), port=int(port, 16),
                            process=comm, pid=pid))
    out.sort(key=lambda e: (e['proto'], e['port'], e['address']))
    return out
