#!/usr/bin/env python3
"""Cost of the itsop.change.audit_log callback on a many-host playbook.

Runs the same playbook (HOSTS hosts x TASKS tasks, local connection, forks 10) with the default
output alone and with the audit_log callback enabled (signed checkpoints, fsync at checkpoints),
interleaved, and prints wall-time medians and the ratio. Target: ratio <= 1.05.

If ARA is installed in the separate venv ``.cache/bench-ara/venv`` (never in .venv; create it with
``python3 -m venv .cache/bench-ara/venv && .cache/bench-ara/venv/bin/pip install ansible-core==2.19.14
ara``), ARA's callback (offline API client, sqlite) is measured on the same playbook against a
baseline from that venv, in the same interleaved rounds.

Default size is small so it finishes in a few minutes; the issue's size is
``--hosts 100 --tasks 20 --reps 3``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
ARA_VENV = REPO / ".cache" / "bench-ara" / "venv"
COLLECTIONS = REPO / ".cache" / "collections"

TASK_KINDS = [
    {"name": "command {i}", "ansible.builtin.command": {"cmd": "true"}, "changed_when": False},
    {"name": "debug {i}", "ansible.builtin.debug": {"msg": "host {{{{ inventory_hostname }}}} task {i}"}},
    {"name": "stat {i}", "ansible.builtin.stat": {"path": "/etc/hostname"}},
    {"name": "set_fact {i}", "ansible.builtin.set_fact": {"bench_fact_{i}": "{{{{ inventory_hostname }}}}"}},
    {"name": "file {i}", "ansible.builtin.file": {"path": "{{{{ bench_dir }}}}/{{{{ inventory_hostname }}}}-{i}",
                                                  "state": "touch", "mode": "0600"}},
]


def _format(value, i):
    if isinstance(value, dict):
        return {k.format(i=i): _format(v, i) for k, v in value.items()}
    if isinstance(value, str):
        return value.format(i=i)
    return value


def write_fixture(work: Path, hosts: int, tasks: int, python: str) -> tuple[Path, Path]:
    inv = {"all": {"hosts": {f"bench-{n:03d}": {} for n in range(hosts)},
                   "vars": {"ansible_connection": "local", "ansible_python_interpreter": python}}}
    inventory = work / "inventory.json"
    inventory.write_text(json.dumps(inv))
    task_list = [_format(TASK_KINDS[i % len(TASK_KINDS)], i) for i in range(tasks)]
    play = [{"name": "audit benchmark", "hosts": "all", "gather_facts": False, "tasks": task_list}]
    playbook = work / "bench.yml"
    playbook.write_text(json.dumps(play, indent=1))  # JSON is YAML
    return inventory, playbook


def base_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in list(env):
        if var.startswith(("ITSOP_", "ARA_")) or var in ("ANSIBLE_CALLBACKS_ENABLED", "ANSIBLE_CALLBACK_PLUGINS"):
            env.pop(var)
    env.update({
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_FORKS": "10",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
        "ANSIBLE_HOME": str(work / "ansible-home"),
    })
    return env


def ara_callback_dir() -> str | None:
    py = ARA_VENV / "bin" / "python"
    if not py.exists():
        return None
    proc = subprocess.run([str(py), "-m", "ara.setup.callback_plugins"], capture_output=True, text=True,
                          check=False)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def build_configs(work: Path, with_ara: bool) -> dict[str, dict]:
    key = work / "signing.pem"
    sys.path.insert(0, str(COLLECTIONS))
    from ansible_collections.itsop.change.plugins.module_utils._audit.keys import write_keypair

    write_keypair(str(key))
    configs: dict[str, dict] = {
        "default": {"bin": VENV_BIN / "ansible-playbook", "env": {}},
        "audit_log": {"bin": VENV_BIN / "ansible-playbook", "env": {
            "ANSIBLE_CALLBACKS_ENABLED": "itsop.change.audit_log",
            "ITSOP_AUDIT_DIR": str(work / "audit"),
            "ITSOP_AUDIT_SIGNING_KEY": str(key),
            "ITSOP_AUDIT_FSYNC": "checkpoint",
            "ITSOP_CHANGE_ID": "CR-BENCH", "ITSOP_STAGE": "3"}},
    }
    cb_dir = ara_callback_dir() if with_ara else None
    if cb_dir:
        ara_bin = ARA_VENV / "bin" / "ansible-playbook"
        configs["ara_venv_default"] = {"bin": ara_bin, "env": {}}
        configs["ara"] = {"bin": ara_bin, "env": {
            "ANSIBLE_CALLBACK_PLUGINS": cb_dir, "ANSIBLE_CALLBACKS_ENABLED": "ara_default",
            "ARA_API_CLIENT": "offline", "ARA_BASE_DIR": str(work / "ara")}}
    return configs


def run_once(cfg: dict, work: Path, inventory: Path, playbook: Path) -> tuple[float, float]:
    """Run the playbook once; return (wall seconds, CPU seconds of ansible-playbook and its workers)."""
    env = base_env(work)
    env.update(cfg["env"])
    bench_dir = work / "files"
    bench_dir.mkdir(exist_ok=True)
    cmd = [str(cfg["bin"]), "-i", str(inventory), str(playbook), "-e", f"bench_dir={bench_dir}"]
    err = work / "stderr.txt"
    with open(err, "w") as err_handle:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=err_handle)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {' '.join(cmd)}\n{err.read_text()[-3000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


# In-process cost of the callback per runner result: real ansible-core Host, Task and
# CallbackTaskResult objects fed to the callback, minus the same loop without it.
MICRO = r'''
import copy, os, sys, time, tempfile
os.environ["ANSIBLE_CONFIG"] = sys.argv[1]
from ansible.plugins.loader import init_plugin_loader, callback_loader
init_plugin_loader([sys.argv[2]])
from ansible.inventory.host import Host
from ansible.playbook.task import Task
from ansible.executor.task_result import CallbackTaskResult
from ansible import context
from ansible.module_utils.common.collections import ImmutableDict
context.CLIARGS = ImmutableDict({})
d = tempfile.mkdtemp(dir=sys.argv[3])
cb = callback_loader.get("itsop.change.audit_log")
cb.set_options(direct={"log_dir": d})
task = Task.load({"name": "stat 3", "ansible.builtin.stat": {"path": "/etc/hostname"}})
hosts = [Host(f"bench-{i:03d}") for i in range(100)]
data = {"changed": False, "stat": {"exists": True, "path": "/etc/hostname", "mode": "0644", "size": 3, "uid": 0,
                                   "gid": 0,
        "isreg": True, "checksum": "a" * 40, "mtime": 1.5, "pw_name": "root"},
        "invocation": {"module_args": {"path": "/etc/hostname", "follow": False, "get_checksum": True}}}
N = 2000
t0 = time.perf_counter()
for i in range(N):
    h = hosts[i % 100]
    r = CallbackTaskResult(h, task, copy.deepcopy(data), {})
    _ = r.result
t_base = time.perf_counter() - t0
t0 = time.perf_counter()
for i in range(N):
    h = hosts[i % 100]
    r = CallbackTaskResult(h, task, copy.deepcopy(data), {})
    cb.v2_runner_on_start(h, task)
    cb.v2_runner_on_ok(r)
t_cb = time.perf_counter() - t0
print((t_cb - t_base) / N)
'''


def callback_cost_per_result(work: Path) -> float:
    proc = subprocess.run([str(VENV_BIN / "python"), "-c", MICRO, str(REPO / "ansible.cfg"), str(COLLECTIONS),
                           str(work)], capture_output=True, text=True, check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=30)
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3, help="interleaved rounds (each runs every config once)")
    ap.add_argument("--no-ara", action="store_true", help="skip ARA even if its venv exists")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-audit-", dir=REPO / ".cache"))
    try:
        python = str(VENV_BIN / "python")
        inventory, playbook = write_fixture(work, args.hosts, args.tasks, python)
        configs = build_configs(work, with_ara=not args.no_ara)
        print(f"audit_log benchmark: {args.hosts} hosts x {args.tasks} tasks, local connection, forks 10, "
              f"{args.reps} interleaved rounds; configs: {', '.join(configs)}")
        if "ara" not in configs and not args.no_ara:
            print(f"ARA: not measured - no ARA venv at {ARA_VENV} (see the module docstring to create one)")
        # warm-up (not measured): bytecode caches, page cache
        run_once(configs["default"], work, inventory, playbook)
        times: dict[str, list[float]] = {name: [] for name in configs}
        cpu: dict[str, list[float]] = {name: [] for name in configs}
        names = list(configs)
        for rnd in range(args.reps):
            order = names[rnd % len(names):] + names[: rnd % len(names)]  # rotate the order each round
            for name in order:
                wall, used = run_once(configs[name], work, inventory, playbook)
                times[name].append(wall)
                cpu[name].append(used)
                print(f"  round {rnd + 1} {name:17} wall {wall:7.2f} s  cpu {used:7.2f} s", flush=True)
        med = {name: statistics.median(v) for name, v in times.items()}
        mcpu = {name: statistics.median(v) for name, v in cpu.items()}
        print("\nmedians (wall time is what the operator waits for; CPU time is less sensitive to a busy machine)")
        for name in names:
            print(f"  {name:17} wall {med[name]:7.2f} s  cpu {mcpu[name]:7.2f} s   "
                  f"(wall runs: {', '.join(f'{x:.2f}' for x in times[name])})")
        ratio = med["audit_log"] / med["default"]
        verdict = "OK" if ratio <= 1.05 else "ABOVE TARGET"
        print(f"\nratio audit_log / default: wall {ratio:.3f} (target <= 1.05: {verdict}), "
              f"cpu {mcpu['audit_log'] / mcpu['default']:.3f}")
        if "ara" in med:
            print(f"ratio ara / default (ARA venv): wall {med['ara'] / med['ara_venv_default']:.3f}, "
                  f"cpu {mcpu['ara'] / mcpu['ara_venv_default']:.3f}")
        per_result = callback_cost_per_result(work)
        results_per_run = args.hosts * args.tasks
        share = per_result * results_per_run / med["default"]
        print(f"callback cost in-process: {per_result * 1e6:.0f} us per result; x {results_per_run} results = "
              f"{per_result * results_per_run:.2f} s = {share * 100:.1f} % of the default run's wall time")
        # the logs written must verify (a cheap callback that writes nothing would be pointless)
        from ansible_collections.itsop.change.plugins.module_utils._audit.verify import find_logs, verify_log

        logs = find_logs(str(work / "audit"))
        results = [verify_log(p, public_keys=[str(work / "signing.pem.pub")]) for p in logs]
        print(f"audit logs written: {len(logs)}; all intact and signed: "
              f"{all(r.ok and r.signature == 'verified' for r in results)}; records per run: "
              f"{sorted({r.records for r in results})}")
        return 0
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
