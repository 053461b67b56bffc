#!/usr/bin/env python3
"""Controller overhead of sopctl: the stage playbooks through ``sopctl run`` against the same
playbooks run directly with ``ansible-playbook`` on the same hosts, interleaved, in one run.

Both sides run with the audit callback enabled and the same extra variables, so the difference
is what sopctl adds: ansible-runner, event handling, the state store, gates, the controller audit
log. Approvals between the gates are given outside the timed sections. Target: sopctl total
<= 1.10 x direct total + 2 s per stage.

    .venv/bin/python benchmarks/bench_sopctl.py                # small: 1 round, test playbooks
    .venv/bin/python benchmarks/bench_sopctl.py --rounds 3     # more rounds
    .venv/bin/python benchmarks/bench_sopctl.py --playbook-dir playbooks --inventory inventories/demo/hosts.yml
        # the collection's stage playbooks on the demo hosts (scripts/demo-hosts up)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "controller"))

from sopctl.stage_table import PLAYBOOK_STAGES  # noqa: E402
from sopctl.stage_table import stage as stage_record  # noqa: E402

from tests.fixtures.sopctl.world import TEST_PLAYBOOKS, World  # noqa: E402

STAGES = list(PLAYBOOK_STAGES)  # the stages sopctl runs as playbooks, from the one stage table


def direct_round(world: World, playbook_dir: Path, inventory: Path, cr: dict, work: Path) -> float:
    evidence = work / "evidence"
    audit = work / "audit"
    evidence.mkdir(mode=0o700, exist_ok=True)
    audit.mkdir(mode=0o700, exist_ok=True)
    total = 0.0
    for stage in STAGES:
        extra = {"itsop_change_id": cr["id"], "itsop_stage": stage, "itsop_change": cr,
                 "itsop_evidence_dir": str(evidence), "itsop_operator": "eko"}
        ev = work / f"extra{stage}.json"
        ev.write_text(json.dumps(extra))
        env = dict(world.env, ITSOP_CHANGE_ID=cr["id"], ITSOP_STAGE=stage, ITSOP_OPERATOR="eko",
                   ITSOP_AUDIT_DIR=str(audit), ANSIBLE_CALLBACKS_ENABLED="itsop.change.audit_log",
                   ANSIBLE_COLLECTIONS_PATH=str(REPO / ".cache" / "collections"),
                   PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        t = time.perf_counter()
        proc = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), "-e",
                               f"@{ev}", str(playbook_dir / stage_record(stage).playbook)], env=env,
                              capture_output=True, text=True, check=False)
        total += time.perf_counter() - t
        if proc.returncode:
            sys.exit(f"direct stage {stage} failed:\n{proc.stdout[-3000:]}")
    return total


def sopctl_round(world: World, cid: str) -> float:
    def timed(*args: str) -> float:
        t = time.perf_counter()
        proc = world.sopctl("eko", *args)
        took = time.perf_counter() - t
        if proc.returncode:
            sys.exit(f"sopctl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr}")
        return took

    def approve(gate: str, people: list[str]) -> None:
        for person in people:
            proc = world.sopctl(person, "approve", cid, "--gate", gate, "--comment", "bench")
            if proc.returncode:
                sys.exit(proc.stderr)

    cr_path = world.cr(cid)
    proc = world.sopctl("budi", "submit", str(cr_path), "--allow-conflict")
    if proc.returncode:
        sys.exit(proc.stderr)
    total = timed("run", cid)  # stage 1
    approve("plan", ["sari", "dewi", "agus"])
    total += timed("run", cid)  # stages 2, 3, 4
    approve("signoff", ["rina", "agus", "dewi"])
    total += timed("run", cid)  # stage 5
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--playbook-dir", type=Path, default=TEST_PLAYBOOKS)
    ap.add_argument("--inventory", type=Path, help="inventory (default: local-connection test hosts)")
    args = ap.parse_args()
    import yaml

    with tempfile.TemporaryDirectory(prefix="bench-sopctl-") as tmp:
        world = World(Path(tmp), playbook_dir=args.playbook_dir.resolve())
        inventory = (args.inventory or world.inventory).resolve()
        if args.inventory:
            cfg = yaml.safe_load((world.home / "config.yml").read_text())
            cfg["inventory"] = str(inventory)
            (world.home / "config.yml").write_text(yaml.safe_dump(cfg))
        sys.path.insert(0, str(REPO / "controller"))
        from sopctl.changes import load_cr

        direct, through = [], []
        for i in range(args.rounds):
            cid = f"CHG-2026-{8000 + i}"
            cr = load_cr(world.cr(cid, path=Path(tmp) / f"direct-{i}.yml"))
            work = Path(tmp) / f"direct-{i}"
            work.mkdir()
            if i % 2 == 0:
                direct.append(direct_round(world, args.playbook_dir.resolve(), inventory, cr, work))
                through.append(sopctl_round(world, f"CHG-2026-{9000 + i}"))
            else:
                through.append(sopctl_round(world, f"CHG-2026-{9000 + i}"))
                direct.append(direct_round(world, args.playbook_dir.resolve(), inventory, cr, work))
            print(f"round {i + 1}: direct ansible-playbook {direct[-1]:.2f} s, sopctl {through[-1]:.2f} s "
                  f"(5 stages)")
        d, s = sum(direct) / len(direct), sum(through) / len(through)
        budget = 1.10 * d + 2.0 * len(STAGES)
        print(f"mean over {args.rounds} round(s): direct {d:.2f} s, sopctl {s:.2f} s, ratio {s / d:.3f}x, "
              f"overhead {s - d:+.2f} s ({(s - d) / len(STAGES):+.2f} s per stage)")
        print(f"target: sopctl <= 1.10 x direct + 2 s per stage = {budget:.2f} s -> "
              f"{'MET' if s <= budget else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
