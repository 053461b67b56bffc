#!/usr/bin/env python3
"""Benchmark: streaming SHA-256 of artifact_verify against ``openssl dgst -sha256``.

Both are measured in the same run on the same file (warm page cache) and the ratio
``openssl seconds / ours seconds`` is printed (1.0 = as fast as openssl; target >= 0.9).

    .venv/bin/python benchmarks/bench_hash.py            # 256 MiB, quick
    .venv/bin/python benchmarks/bench_hash.py --size 1G  # the issue's 1 GiB figure
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".cache" / "collections"))

from ansible_collections.itsop.change.plugins.module_utils._artifact.digest import (  # noqa: E402
    DEFAULT_BUFFER_SIZE,
    hash_file,
)


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    text = text.strip().upper().rstrip("IB")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def make_file(path: Path, size: int) -> None:
    block = os.urandom(8 * 1024 * 1024)
    with open(path, "wb") as out:
        left = size
        while left > 0:
            out.write(block[: min(left, len(block))])
            left -= len(block)


def time_openssl(path: Path) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(["openssl", "dgst", "-sha256", "-r", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return time.perf_counter() - start, out.split()[0]


def time_ours(path: Path, buffer_size: int) -> tuple[float, str]:
    start = time.perf_counter()
    digest = hash_file(str(path), ("sha256",), buffer_size)["digests"]["sha256"]
    return time.perf_counter() - start, digest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256M", help="file size, e.g. 256M or 1G (default 256M)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each (median is used)")
    parser.add_argument("--buffer", default=str(DEFAULT_BUFFER_SIZE), help="read buffer size")
    parser.add_argument("--dir", default=None, help="directory for the test file (default: system temp)")
    args = parser.parse_args()
    if not shutil.which("openssl"):
        print("openssl not found; no reference to compare with", file=sys.stderr)
        return 2
    size = parse_size(args.size)
    buffer_size = parse_size(args.buffer)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-hash-") as tmp:
        path = Path(tmp) / "artifact.bin"
        make_file(path, size)
        # warm the page cache for both contenders
        time_openssl(path)
        time_ours(path, buffer_size)
        ref, ours = [], []
        for _ in range(args.rounds):
            t_ref, d_ref = time_openssl(path)
            t_ours, d_ours = time_ours(path, buffer_size)
            if d_ref != d_ours:
                print(f"DIGEST MISMATCH: openssl {d_ref} ours {d_ours}", file=sys.stderr)
                return 1
            ref.append(t_ref)
            ours.append(t_ours)
    mib = size / 1024**2
    m_ref, m_ours = statistics.median(ref), statistics.median(ours)
    print(f"file {mib:.0f} MiB, buffer {buffer_size // 1024} KiB, {args.rounds} rounds (median)")
    print(f"openssl dgst -sha256 : {m_ref:.3f} s  ({mib / m_ref:.0f} MiB/s)")
    print(f"artifact.hash_file   : {m_ours:.3f} s  ({mib / m_ours:.0f} MiB/s)")
    ratio = m_ref / m_ours
    print(f"ratio (throughput ours / openssl): {ratio:.2f}x  target >= 0.90x  "
          f"{'OK' if ratio >= 0.9 else 'BELOW TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
