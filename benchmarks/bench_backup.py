#!/usr/bin/env python
"""Benchmark backup_snapshot and backup_verify against ``tar -cf - DIR | zstd -T0`` in the same run.

Runs the real modules (``python -m ansible_collections.itsop.change.plugins.modules.<name> ARGS``)
on a generated tree and prints wall-time ratios and the modules' peak memory (VmHWM of the module
process, sampled from /proc; the compressor and tar children are reported separately through
wait4's rusage, which includes them).

    .venv/bin/python benchmarks/bench_backup.py            # 120 MB in 10,000 files (a few minutes)
    .venv/bin/python benchmarks/bench_backup.py --full     # 600 MB in 50,000 files (the issue's size)

Targets (issue 4, for the --full tree): snapshot <= 1.5x the reference, verify (restore test) <= 2x,
peak memory < 200 MB. On the small default tree the modules' fixed start-up (about 0.2 s) weighs more.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLLECTIONS = REPO / ".cache" / "collections"
MODULES = "ansible_collections.itsop.change.plugins.modules."


def generate_tree(root: Path, total_mb: int, files: int, seed: int = 4) -> None:
    """A deterministic tree: many small text-like files, some binary ones, a few large ones."""
    marker = root / ".generated"
    spec = f"{total_mb}:{files}:{seed}"
    if marker.exists() and marker.read_text() == spec:
        return
    if root.exists():
        shutil.rmtree(root)
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    pool = os.urandom(8 * 1024 * 1024)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(2000)]
    text = b" ".join(rng.choice(words) for _ in range(2_000_000))
    total = total_mb * 1024 * 1024
    large = max(1, files // 1000)
    small_budget = int(total * 0.55)
    sizes = [int(rng.lognormvariate(8.0, 1.3)) for _ in range(files - large)]
    scale = small_budget / max(1, sum(sizes))
    sizes = [max(0, int(s * scale)) for s in sizes]
    big_each = max(1, (total - sum(sizes)) // large)
    sizes += [big_each] * large
    rng.shuffle(sizes)
    per_dir = 200
    for index, size in enumerate(sizes):
        d = root / f"d{index // (per_dir * 20):03d}" / f"s{(index // per_dir) % 20:02d}"
        if index % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        source = pool if index % 3 == 0 else text
        start = rng.randrange(0, max(1, len(source) - size)) if size < len(source) else 0
        data = source[start:start + size]
        while len(data) < size:
            data += source[: size - len(data)]
        (d / f"f{index:06d}.dat").write_bytes(data)
    marker.write_text(spec)


def drop_note() -> str:
    return "page cache warm (each measurement is preceded by one unmeasured run)"


def time_shell(cmd: str) -> float:
    start = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)
    return time.perf_counter() - start


def run_module(name: str, args: dict, workdir: Path) -> tuple[float, int, int, dict]:
    """Run one module as its own process; return (seconds, module VmHWM kB, incl. children kB, result)."""
    args_file = workdir / f"{name}-args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(COLLECTIONS)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", MODULES + name, str(args_file)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while not done.is_set():
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read()
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    done.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.join()
    try:
        result = json.loads(out)
    except ValueError:
        raise SystemExit(f"{name} printed no JSON (exit {proc.returncode}): {out[-2000:]!r} {err[-2000:]!r}") from None
    if result.get("failed"):
        raise SystemExit(f"{name} failed: {result.get('msg')}")
    return elapsed, peak[0], usage.ru_maxrss, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="600 MB in 50,000 files (issue 4's size)")
    parser.add_argument("--mb", type=int, help="tree size in MB (overrides the default/--full)")
    parser.add_argument("--files", type=int, help="number of files (overrides the default/--full)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per command (median is used)")
    parser.add_argument("--workdir", default=None, help="where to build the tree (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated tree for later runs")
    opts = parser.parse_args()
    total_mb = opts.mb or (600 if opts.full else 120)
    files = opts.files or (50_000 if opts.full else 10_000)
    if not shutil.which("zstd"):
        print("zstd is not installed: the reference needs it", file=sys.stderr)
        return 2
    work = Path(opts.workdir or tempfile.mkdtemp(prefix="bench-backup-", dir="/var/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    tree = work / "tree"
    try:
        t0 = time.perf_counter()
        generate_tree(tree, total_mb, files)
        size = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
        print(f"tree: {tree} {size / 1e6:.0f} MB in {files} files (generated in {time.perf_counter() - t0:.1f}s)")
        print(drop_note())
        ref_out = work / "ref.tar.zst"
        ref_cmd = f"tar -cf - -C {tree.parent} {tree.name} | zstd -q -T0 -c > {ref_out}"
        store = work / "store"
        snap_args = {"paths": [str(tree)], "dest": str(store), "label": "BENCH-1", "compression": "zstd"}
        time_shell(ref_cmd)  # warm-up
        ref_times, snap_times, verify_times = [], [], []
        snap_peaks, verify_peaks, child_peaks = [], [], []
        last = None
        for _ in range(opts.repeat):
            ref_times.append(time_shell(ref_cmd))
            if store.exists():
                shutil.rmtree(store)
            elapsed, peak, with_children, last = run_module("backup_snapshot", snap_args, work)
            snap_times.append(elapsed)
            snap_peaks.append(peak)
            child_peaks.append(with_children)
            elapsed, peak, with_children, vres = run_module(
                "backup_verify", {"snapshot_path": last["snapshot_dir"]}, work)
            if vres.get("verdict") != "passed":
                raise SystemExit(f"verify did not pass: {vres.get('failures')}")
            verify_times.append(elapsed)
            verify_peaks.append(peak)
            child_peaks.append(with_children)
        ref = statistics.median(ref_times)
        snap = statistics.median(snap_times)
        ver = statistics.median(verify_times)
        print(f"reference tar|zstd -T0: median {ref:.2f}s  ({', '.join(f'{t:.2f}' for t in ref_times)}), "
              f"archive {ref_out.stat().st_size / 1e6:.0f} MB")
        print(f"backup_snapshot:        median {snap:.2f}s  ({', '.join(f'{t:.2f}' for t in snap_times)}), "
              f"archive {last['archive_size'] / 1e6:.0f} MB, {last['entry_count']} manifest entries")
        print(f"backup_verify:          median {ver:.2f}s  ({', '.join(f'{t:.2f}' for t in verify_times)}), "
              f"test extraction under {vres.get('temp_base')}")
        print(f"ratio snapshot/reference: {snap / ref:.2f}x  (target <= 1.5x)")
        print(f"ratio verify/reference:   {ver / ref:.2f}x  (target <= 2.0x)")
        print(f"peak memory backup_snapshot process: {max(snap_peaks) / 1024:.1f} MB (target < 200 MB)")
        print(f"peak memory backup_verify process:   {max(verify_peaks) / 1024:.1f} MB (target < 200 MB)")
        print(f"peak RSS incl. children (zstd, tar): {max(child_peaks) / 1024:.1f} MB")
    finally:
        if not opts.keep and not opts.workdir:
            shutil.rmtree(work, ignore_errors=True)
        else:
            shutil.rmtree(work / "store", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
