"""Shared helpers for the test suite: run real ansible-playbook and podman commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
COLLECTIONS = REPO / ".cache" / "collections"
CONTAINERS_CONF = REPO / "tests" / "containers" / "containers.conf"
TESTHOST_IMAGE = os.environ.get("ITSOP_TESTHOST_IMAGE", "localhost/itsop-testhost:bookworm")
FIXTURE_REPO = REPO / ".cache" / "aptrepo"  # built by tests/fixtures/build_demo_debs.py
# The test controller's SSH key (made on first use) and the pinned host keys of the test hosts.
SSH_KEY = REPO / ".cache" / "test-ssh" / "id_ed25519"


def base_env(**extra: str) -> dict[str, str]:
    """Environment for ansible/podman subprocesses run by tests."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_COLLECTIONS_PATH"] = f"{COLLECTIONS}{os.pathsep}{env.get('ANSIBLE_COLLECTIONS_PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    env.update(extra)
    return env


def run(cmd: list[str], *, check: bool = True, env: dict[str, str] | None = None,
        cwd: Path | None = None, timeout: int = 900, input_text: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env or base_env(), cwd=cwd or REPO,
                          timeout=timeout, input=input_text, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n--- stdout ---\n{proc.stdout[-6000:]}"
            f"\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
    return proc


def ansible_playbook(playbook: str | Path, *args: str, check: bool = True,
                     env: dict[str, str] | None = None, timeout: int = 900,
                     ) -> subprocess.CompletedProcess[str]:
    """Run ``ansible-playbook`` from the venv with the repository's collection on the path."""
    return run([str(VENV_BIN / "ansible-playbook"), str(playbook), *args], check=check,
               env=env or base_env(), timeout=timeout)


def podman(*args: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return run(["podman", *args], check=check, timeout=timeout)


def have_podman_image(image: str = TESTHOST_IMAGE) -> bool:
    if not shutil.which("podman"):
        return False
    return podman("image", "exists", image, check=False).returncode == 0


def ssh_access(*names: str) -> dict[str, str]:
    """Reach the containers ``names`` over SSH like real servers; returns their addresses.

    One home with the demo: ``scripts/demo-hosts ssh-access`` installs the test controller's key for
    root, starts sshd and pins each host key in ``SSH_KEY``'s folder.
    """
    out = run(["bash", str(REPO / "scripts" / "demo-hosts"), "ssh-access", str(SSH_KEY), *names]).stdout
    return dict(line.split() for line in out.splitlines())


# What the demo site sets for its hosts (inventories/demo/group_vars/all.yml): the demo application's
# maintenance flag, which role itsop.change.maintenance sets and removes (production default: none).
DEMO_SITE_VARS = {"maintenance_flag": "/var/lib/itsop-demo-web/maintenance"}


def ssh_hostvars(address: str) -> dict[str, object]:
    """Variables for a test host reached over SSH with pipelining (as the demo does), with the demo
    site's settings (``DEMO_SITE_VARS``): every test host runs the demo application."""
    return {"ansible_connection": "ssh", "ansible_host": address, "ansible_user": "root",
            "ansible_ssh_private_key_file": str(SSH_KEY),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={SSH_KEY.parent / 'known_hosts'} "
                                       "-o StrictHostKeyChecking=yes",
            "ansible_ssh_pipelining": True, "ansible_python_interpreter": "/usr/bin/python3",
            **DEMO_SITE_VARS}


class TestHost:
    """A real Debian 12 container running systemd as PID 1, reached over SSH like a server."""

    __test__ = False  # a helper, not a pytest test class

    def __init__(self, name: str | None = None, *, image: str = TESTHOST_IMAGE,
                 volumes: list[str] | None = None) -> None:
        self.name = name or f"itsop-t-{uuid.uuid4().hex[:8]}"
        self.image = image
        self.volumes = volumes or []
        self.address = ""

    def start(self) -> TestHost:
        args = ["run", "-d", "--name", self.name, "--hostname", self.name, "--systemd=always",
                "--label", "itsop.test=1"]
        if FIXTURE_REPO.is_dir():
            args += ["-v", f"{FIXTURE_REPO}:/srv/itsop-repo:ro"]
        for vol in self.volumes:
            args += ["-v", vol]
        podman(*args, self.image, "/sbin/init")
        # wait until systemd reached a steady state (running or degraded)
        run(["podman", "exec", self.name, "systemctl", "is-system-running", "--wait"], check=False,
            timeout=120)
        self.address = ssh_access(self.name)[self.name]
        return self

    def exec(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *cmd, check=check)

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)

    def inventory(self, tmp: Path, group: str = "all", hostvars: dict | None = None) -> Path:
        """Write a one-host YAML inventory for this host and return its path."""
        host = ssh_hostvars(self.address)
        host.update(hostvars or {})
        inv = {"all": {"children": {group: {"hosts": {self.name: host}}}}} if group != "all" else \
            {"all": {"hosts": {self.name: host}}}
        path = tmp / f"inventory-{self.name}.json"
        path.write_text(json.dumps(inv))
        return path


ROUTER_IMAGE = os.environ.get("ITSOP_ROUTER_IMAGE", "localhost/itsop-router:bookworm")


def router_hostvars(address: str) -> dict[str, object]:
    """Variables for a router reached like a network device: network_cli to its CLI (vtysh, account
    netops) and, for the platform steps, SSH to root on its Linux side (as the demo does)."""
    return {"ansible_connection": "ansible.netcommon.network_cli", "ansible_network_os": "itsop.change.frr",
            "ansible_host": address, "ansible_user": "netops",
            "ansible_ssh_private_key_file": str(SSH_KEY),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={SSH_KEY.parent / 'known_hosts'} "
                                       "-o StrictHostKeyChecking=yes",
            "ansible_ssh_pipelining": True, "ansible_python_interpreter": "/usr/bin/python3",
            "network_device_user": "root"}


class RouterEstate:
    """The demo's three FRR routers (staging, two production; eBGP full mesh) under a prefix of
    their own, started by ``scripts/demo-hosts routers-up`` - one home with the demo."""

    __test__ = False

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"itsop-n{uuid.uuid4().hex[:6]}-"
        self.env = base_env(ITSOP_DEMO_PREFIX=self.prefix, ITSOP_DEMO_LABEL="itsop.test=1")
        self.names = [f"{self.prefix}rtr-stg", f"{self.prefix}rtr-prd-1", f"{self.prefix}rtr-prd-2"]
        self.addresses: dict[str, str] = {}
        self.gateway = ""  # the controller's address on the routers' network

    def start(self) -> RouterEstate:
        run(["bash", str(REPO / "scripts" / "demo-hosts"), "routers-up"], env=self.env, timeout=300)
        out = run(["bash", str(REPO / "scripts" / "demo-hosts"), "ssh-access", str(SSH_KEY), *self.names],
                  env=self.env).stdout
        self.addresses = dict(line.split() for line in out.splitlines())
        self.gateway = podman("network", "inspect", "--format", "{{ range .Subnets }}{{ .Gateway }}{{ end }}",
                              f"{self.prefix}net").stdout.strip()
        return self

    def stop(self) -> None:
        run(["bash", str(REPO / "scripts" / "demo-hosts"), "down"], env=self.env, check=False)

    def vtysh(self, name: str, *commands: str) -> str:
        args = []
        for command in commands:
            args += ["-c", command]
        return podman("exec", name, "vtysh", *args).stdout

    def running_config(self, name: str) -> bytes:
        return subprocess.run(["podman", "exec", name, "vtysh", "-c", "show running-config"],
                              capture_output=True, check=True, env=base_env()).stdout

    def inventory(self, tmp: Path, names: list[str] | None = None, **extra: object) -> Path:
        groups: dict[str, dict] = {"routers_staging": {"hosts": {}}, "routers_production": {"hosts": {}}}
        for name in names or self.names:
            group = "routers_staging" if name.endswith("rtr-stg") else "routers_production"
            peers = sorted(address for other, address in self.addresses.items() if other != name)
            groups[group]["hosts"][name] = {**router_hostvars(self.addresses[name]),
                                            "network_template_vars": {"bgp_peers": peers}, **extra}
        path = tmp / f"routers-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps({"all": {"children": {"routers": {"children": groups}}}}))
        return path


def evidence(path: Path, kind: str, change_id: str | None = None, host: str | None = None) -> dict:
    """Read an evidence file a stage wrote through the controller's one loader and check it keeps the
    contract: the envelope (kind, change, host; ``passed`` agrees with ``reasons``) and the JSON Schema
    of its kind."""
    from sopctl.evidence import load

    doc = load(Path(path), kind, change_id=change_id, host=host)
    assert not doc.missing and doc.invalid == [], f"{path}: {doc.invalid or 'missing'}"
    return doc.doc
