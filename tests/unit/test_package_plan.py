"""Impact analysis of a package change (module_utils/package_plan.py) and the package_plan_info module.

apt's own output is produced for real: a private APT root (its own sources, lists, cache and dpkg
status file in tmp_path) over the fixture repository .cache/aptrepo, so ``apt-get -s`` runs on the
controller without reading or touching the system's package state. ``dpkg --compare-versions`` is
the oracle for the version order.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.itsop.change.plugins.module_utils import package_plan as pp
from tests.helpers import FIXTURE_REPO, REPO, VENV_BIN, base_env

needs_apt = pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get (Debian family controller)")
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg (Debian family controller)")


# --- a private APT root over the fixture repository -----------------------------------------------

STANZA = """Package: {name}
Status: install ok installed
Priority: optional
Architecture: {arch}
Version: {version}
Maintainer: test <test@example.invalid>
Description: {name}
"""


def fixture_status_stanza(name: str, version: str) -> str:
    archive_fields = ("Filename:", "Size:", "MD5sum:", "SHA1:", "SHA256:")
    for stanza in (FIXTURE_REPO / "Packages").read_text().split("\n\n"):
        lines = stanza.strip().splitlines()
        if f"Package: {name}" in lines and f"Version: {version}" in lines:
            kept = [line for line in lines if not line.startswith(archive_fields)]
            return "\n".join([kept[0], "Status: install ok installed", *kept[1:]]) + "\n"
    raise AssertionError(f"{name} {version} is not in the fixture repository")


class AptRoot:
    """apt-get/apt-cache confined to tmp: own sources.list, lists, cache, state and dpkg status."""

    def __init__(self, root: Path) -> None:
        if not (FIXTURE_REPO / "Packages").is_file():
            pytest.fail(f"fixture repository {FIXTURE_REPO} missing: run scripts/setup.sh")
        self.root = root
        for sub in ("lists/partial", "cache/archives/partial", "state", "parts", "prefs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "sources.list").write_text(f"deb [trusted=yes] file:{FIXTURE_REPO} ./\n")
        self.status = root / "status"
        self.config = root / "apt.conf"
        options = {
            "Dir::State": root / "state", "Dir::State::status": self.status, "Dir::State::Lists": root / "lists",
            "Dir::Cache": root / "cache", "Dir::Etc::sourcelist": root / "sources.list", "Dir::Etc::sourceparts": "-",
            "Dir::Etc::parts": root / "parts", "Dir::Etc::preferencesparts": root / "prefs",
            "Debug::NoLocking": "1", "APT::Architecture": "amd64", "Acquire::Languages": "none",
        }
        self.config.write_text("".join(f'{key} "{value}";\n' for key, value in options.items()))
        self.installed({})

    def env(self) -> dict[str, str]:
        return {**os.environ, "APT_CONFIG": str(self.config), "LC_ALL": "C"}

    def installed(self, packages: dict[str, str]) -> None:
        """Write the dpkg status file: python3 (the fixture's dependency) plus ``packages`` as dpkg records
        them (the repository's control fields without the archive fields)."""
        stanzas = [STANZA.format(name="python3", arch="amd64", version="3.11.2-1+b1")]
        for name, version in packages.items():
            stanzas.append(fixture_status_stanza(name, version))
        self.status.write_text("\n".join(stanzas))
        self.apt_get("update")

    def apt_get(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["apt-get", "-q", *args], capture_output=True, text=True, env=self.env(), check=False,
                              timeout=120)
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def simulate(self, *args: str) -> str:
        return self.apt_get("-s", "-y", "--allow-downgrades", *args).stdout


@pytest.fixture
def apt(tmp_path) -> AptRoot:
    if shutil.which("apt-get") is None:
        pytest.skip("needs apt-get (Debian family controller)")
    return AptRoot(tmp_path / "apt")


# --- parse_apt_simulation on real apt output ------------------------------------------------------

def test_fresh_install(apt):
    out = apt.simulate("install", "itsop-demo-web=1.1.0")
    assert pp.parse_apt_simulation(out) == [
        {"name": "itsop-demo-web", "action": "install", "from": None, "to": "1.1.0", "arch": "all"}]


def test_upgrade(apt):
    apt.installed({"itsop-demo-web": "1.0.0"})
    out = apt.simulate("install", "itsop-demo-web=1.1.0")
    assert pp.parse_apt_simulation(out) == [
        {"name": "itsop-demo-web", "action": "upgrade", "from": "1.0.0", "to": "1.1.0", "arch": "all"}]


def test_downgrade(apt):
    apt.installed({"itsop-demo-web": "1.2.0"})
    out = apt.simulate("install", "itsop-demo-web=1.0.0")
    assert pp.parse_apt_simulation(out) == [
        {"name": "itsop-demo-web", "action": "downgrade", "from": "1.2.0", "to": "1.0.0", "arch": "all"}]


def test_reinstall_of_the_installed_version(apt):
    apt.installed({"itsop-demo-web": "1.1.0"})
    out = apt.simulate("install", "--reinstall", "itsop-demo-web=1.1.0")
    assert [c["action"] for c in pp.parse_apt_simulation(out)] == ["reinstall"]


def test_already_at_the_requested_version_is_no_change(apt):
    apt.installed({"itsop-demo-web": "1.1.0"})
    out = apt.simulate("install", "itsop-demo-web=1.1.0")
    assert "0 upgraded, 0 newly installed" in out
    assert pp.parse_apt_simulation(out) == []


def test_remove(apt):
    apt.installed({"itsop-demo-web": "1.0.0"})
    out = apt.simulate("remove", "itsop-demo-web")
    assert pp.parse_apt_simulation(out) == [
        {"name": "itsop-demo-web", "action": "remove", "from": "1.0.0", "to": None, "arch": None}]


def test_unavailable_version_is_refused_by_apt_naming_package_and_version(apt):
    proc = apt.apt_get("-s", "install", "itsop-demo-web=9.9.9", check=False)
    assert proc.returncode != 0
    assert "Version '9.9.9' for 'itsop-demo-web' was not found" in proc.stderr


def test_transaction_order_is_apt_order_and_conf_lines_are_ignored():
    # typical Debian security update output: epochs, +debNuM revisions, ~ versions, foreign arch, Conf lines
    text = "\n".join([
        "NOTE: This is only a simulation!",
        "Inst libc6-dev [2.36-9+deb12u3] (2.36-9+deb12u4 Debian-Security:12/stable-security [amd64]) []",
        "Inst libc6 [2.36-9+deb12u3] (2.36-9+deb12u4 Debian-Security:12/stable-security [amd64])",
        "Inst libc6:i386 [2.36-9+deb12u3] (2.36-9+deb12u4 Debian-Security:12/stable-security [i386])",
        "Inst nginx-common [1.22.1-9] (1:1.18.0-6 local [all])",
        "Inst tool [2.0~rc1-1] (2.0-1 local [amd64])",
        "Inst newdep (0.3-1 Debian:12.5/stable [amd64])",
        "Conf libc6 (2.36-9+deb12u4 Debian-Security:12/stable-security [amd64])",
        "Remv oldlib [1.0-1]",
        "Remv orphan",
        "Purg purged [1.0]",
    ])
    changes = pp.parse_apt_simulation(text)
    assert [(c["name"], c["action"], c["from"], c["to"], c["arch"]) for c in changes] == [
        ("libc6-dev", "upgrade", "2.36-9+deb12u3", "2.36-9+deb12u4", "amd64"),
        ("libc6", "upgrade", "2.36-9+deb12u3", "2.36-9+deb12u4", "amd64"),
        ("libc6:i386", "upgrade", "2.36-9+deb12u3", "2.36-9+deb12u4", "i386"),
        ("nginx-common", "upgrade", "1.22.1-9", "1:1.18.0-6", "all"),   # the epoch wins
        ("tool", "upgrade", "2.0~rc1-1", "2.0-1", "amd64"),            # a release candidate sorts first
        ("newdep", "install", None, "0.3-1", "amd64"),
        ("oldlib", "remove", "1.0-1", None, None),
        ("orphan", "remove", None, None, None),
    ]


def test_empty_or_unrelated_output_is_no_change():
    assert pp.parse_apt_simulation("") == []
    assert pp.parse_apt_simulation("Reading package lists...\nE: Unable to locate package nope\n") == []


# --- version order: dpkg's -------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b", "expected"), [
    ("1.0.0", "1.1.0", -1),
    ("1.10", "1.9", 1),                 # numeric, not lexical
    ("1.0", "1.0.0", -1),
    ("1.0.0~rc1", "1.0.0", -1),         # ~ sorts before the end: a release candidate is older
    ("1.0~~", "1.0~", -1),
    ("1.0a", "1.0+", -1),               # letters sort before other characters
    ("1.0a", "1.0.1", -1),
    ("1:0.9", "2.0", 1),                # epoch first
    ("0:1.0", "1.0", 0),                # epoch 0 is the default
    ("1.0", "1.0-0", 0),                # a missing revision equals 0
    ("1.0-2", "1.0-10", -1),
    ("1.0+dfsg-1", "1.0-1", 1),         # the revision starts after the last hyphen
    ("2.36-9+deb12u3", "2.36-9+deb12u10", -1),
    ("1.2.3", "1.2.3", 0),
    ("007", "7", 0),                    # leading zeros do not count
])
def test_compare_versions_follows_debian_policy(a, b, expected):
    assert pp.compare_versions_simple(a, b) == expected
    assert pp.compare_versions_simple(b, a) == -expected


def _dpkg_order(a: str, b: str) -> int:
    for op, value in (("lt", -1), ("eq", 0), ("gt", 1)):
        if subprocess.run(["dpkg", "--compare-versions", a, op, b], capture_output=True, check=False).returncode == 0:
            return value
    raise AssertionError(f"dpkg cannot order {a!r} and {b!r}")


@needs_dpkg
def test_compare_versions_agrees_with_dpkg_on_generated_versions():
    rng = random.Random(20261124)  # noqa: S311 - reproducible test data, not security

    def version() -> str:
        text = str(rng.randint(0, 12)) + "".join(rng.choice("0129az.+~") for _ in range(rng.randint(0, 6)))
        if rng.random() < 0.4:
            text += "-" + rng.choice(["0", "1", "1+b1", "2~bpo12+1", "1.a", "10"])
        if rng.random() < 0.2:
            text = f"{rng.randint(0, 2)}:{text}"
        return text

    pairs = [(version(), version()) for _ in range(300)]
    disagreements = [(a, b, pp.compare_versions_simple(a, b), _dpkg_order(a, b)) for a, b in pairs
                     if pp.compare_versions_simple(a, b) != _dpkg_order(a, b)]
    assert disagreements == []


@pytest.mark.parametrize("bad", ["", "abc", "x:1.0", "1.0:", ":", "-", "1.0-", "~", "1..0--2"])
def test_malformed_versions_still_compare_and_consistently(bad):
    # apt never prints these; a label must not crash the module: total order, antisymmetric, reflexive
    assert pp.compare_versions_simple(bad, bad) == 0
    for other in ("0", "1.0", "1:2.0", "~"):
        forward = pp.compare_versions_simple(bad, other)
        assert forward in (-1, 0, 1)
        assert pp.compare_versions_simple(other, bad) == -forward


def test_malformed_epoch_is_compared_as_part_of_the_version():
    # "x:1.0" has no numeric epoch: compared whole with epoch 0, so any real epoch is newer
    assert pp.compare_versions_simple("x:1.0", "1:0.1") == -1


# --- dnf transaction table (documented format; untested on a RHEL host) -----------------------------

DNF_OUTPUT = """\
Dependencies resolved.
================================================================================
 Package              Arch      Version              Repository           Size
================================================================================
Installing:
 itsop-demo-web       noarch    1.1.0-1.el9          itsop                 12 k
Upgrading:
 openssl              x86_64    1:3.0.7-25.el9       baseos               1.2 M
Downgrading:
 curl                 x86_64    7.76.1-19.el9        baseos               294 k
Installing dependencies:
 python3-foo          noarch    2.0-1.el9            appstream             40 k
Removing:
 oldpkg               x86_64    0.9-1.el9            @System               10 k

Transaction Summary
================================================================================
Install  2 Packages
 notapackage line indented after the summary
"""


def test_dnf_transaction_table():
    changes = pp.parse_dnf_transaction(DNF_OUTPUT)
    assert [(c["name"], c["action"], c["to"], c["arch"]) for c in changes] == [
        ("itsop-demo-web", "install", "1.1.0-1.el9", "noarch"),
        ("openssl", "upgrade", "1:3.0.7-25.el9", "x86_64"),
        ("curl", "downgrade", "7.76.1-19.el9", "x86_64"),
        ("python3-foo", "install", "2.0-1.el9", "noarch"),
        ("oldpkg", "remove", "0.9-1.el9", "x86_64"),
    ]
    assert all(c["from"] is None for c in changes)  # the module fills "from" with rpm -q


# --- reboot, services, conffiles, disk ----------------------------------------------------------------

def test_needs_reboot_names_kernel_libc_init_bus_and_microcode_only():
    names = ["systemd-timesyncd", "libc6-dev", "linux-image-6.1.0-18-amd64", "libc6", "libc6:i386", "dbus-user-session",
             "kernel-headers", "kernel-core", "glibc-langpack-en", "intel-microcode", "systemd", "nginx", "libc6"]
    assert pp.needs_reboot(names) == ["intel-microcode", "kernel-core", "libc6", "libc6:i386",
                                      "linux-image-6.1.0-18-amd64", "systemd"]
    assert pp.needs_reboot(["itsop-demo-web", "python3"]) == []


def test_service_units_from_files():
    files = [
        "/lib/systemd/system/b.service", "/usr/lib/systemd/system/a.service", "/lib/systemd/system/a.service",
        "/lib/systemd/system/getty@.service", "/lib/systemd/system/a.socket", "/lib/systemd/system/a.timer",
        "/etc/systemd/system/local.service", "/lib/systemd/system/sub/dir.service",
        "/etc/init.d/legacy", "/etc/init.d/README", "/etc/init.d/skeleton", "/usr/share/doc/a.service",
    ]
    assert pp.service_units_from_files(files) == ["a", "b", "legacy"]


@needs_dpkg
def test_service_units_of_the_fixture_package():
    deb = FIXTURE_REPO / "itsop-demo-web_1.0.0_all.deb"
    if not deb.is_file():
        pytest.fail(f"{deb} missing: run scripts/setup.sh")
    listing = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    names = subprocess.run(["tar", "-t"], input=listing, capture_output=True, check=True).stdout.decode().split()
    files = ["/" + name.lstrip("./") for name in names]
    assert "/lib/systemd/system/itsop-demo-web.service" in files
    assert pp.service_units_from_files(files) == ["itsop-demo-web"]


def test_parse_conffiles():
    text = (" /etc/itsop-demo-web/config.ini 0f343b0931126a20f133d67c2b018a3b\n"
            " /etc/old.conf d41d8cd98f00b204e9800998ecf8427e obsolete\n"
            "\n"
            "not a conffile line\n")
    assert pp.parse_conffiles(text) == [
        {"path": "/etc/itsop-demo-web/config.ini", "md5": "0f343b0931126a20f133d67c2b018a3b", "obsolete": False},
        {"path": "/etc/old.conf", "md5": "d41d8cd98f00b204e9800998ecf8427e", "obsolete": True},
    ]


def test_file_md5_detects_a_locally_modified_conffile(tmp_path):
    conf = tmp_path / "config.ini"
    conf.write_bytes(b"[server]\nport = 8080\n" * 5000)  # larger than one read block
    packaged = hashlib.md5(conf.read_bytes()).hexdigest()  # noqa: S324 - dpkg's conffile digest
    assert pp.file_md5(str(conf)) == packaged
    conf.write_bytes(conf.read_bytes() + b"# local edit\n")
    assert pp.file_md5(str(conf)) != packaged
    assert pp.file_md5(str(tmp_path / "missing.ini")) is None


def test_disk_free_probes_the_nearest_existing_parent(tmp_path):
    stat = os.statvfs(tmp_path)
    disk = pp.disk_free([str(tmp_path), str(tmp_path / "not" / "yet" / "there")])
    assert set(disk) == {str(tmp_path), str(tmp_path / "not" / "yet" / "there")}
    for entry in disk.values():
        assert entry["total_bytes"] == stat.f_blocks * stat.f_frsize
        assert 0 < entry["free_bytes"] <= entry["total_bytes"]


# --- downtime model ----------------------------------------------------------------------------------

UPGRADE = [{"name": "itsop-demo-web", "action": "upgrade", "from": "1.0.0", "to": "1.1.0", "arch": "all"}]


def test_downtime_default_model_term_by_term():
    estimate = pp.estimate_downtime(UPGRADE * 3, [{"name": "a"}, {"name": "b"}], reboot=False)
    assert estimate["terms"] == {"base": 30, "packages": 45, "service_restarts": 20, "reboot": 0, "health_check": 15}
    assert estimate["seconds"] == 110
    assert estimate["model"] == pp.DEFAULT_DOWNTIME_MODEL
    with_reboot = pp.estimate_downtime(UPGRADE * 3, [{"name": "a"}, {"name": "b"}], reboot=True)
    assert with_reboot["seconds"] - estimate["seconds"] == 180


def test_downtime_no_change_is_zero_even_with_a_pending_reboot():
    assert pp.estimate_downtime([], [{"name": "a"}], reboot=True) == {
        "seconds": 0, "model": pp.DEFAULT_DOWNTIME_MODEL, "terms": {}}


def test_downtime_overrides_apply_and_keep_the_other_defaults():
    estimate = pp.estimate_downtime(UPGRADE, [], reboot=True, model={"reboot_seconds": 600, "base_seconds": "0"})
    assert estimate["model"]["reboot_seconds"] == 600 and estimate["model"]["base_seconds"] == 0
    assert estimate["model"]["per_package_seconds"] == 15
    assert estimate["seconds"] == 0 + 15 + 0 + 600 + 15
    assert pp.DEFAULT_DOWNTIME_MODEL["reboot_seconds"] == 180, "the defaults must not be mutated"


@pytest.mark.parametrize(("model", "message"), [
    ({"reboot_second": 60}, r"^downtime_model\.reboot_second: unknown key; known keys: base_seconds, "),
    ({"base_seconds": -1}, r"^downtime_model\.base_seconds: must be a number of seconds, 0 or more; got -1$"),
    ({"base_seconds": "thirty"}, r"^downtime_model\.base_seconds: .* got 'thirty'$"),
    ({"health_check_seconds": None}, r"^downtime_model\.health_check_seconds: .* got None$"),
    ({"per_package_seconds": True}, r"^downtime_model\.per_package_seconds: .* got True$"),
    ({"reboot_seconds": float("nan")}, r"^downtime_model\.reboot_seconds: .* got nan$"),
    ({"reboot_seconds": float("inf")}, r"^downtime_model\.reboot_seconds: .* got inf$"),
])
def test_downtime_bad_model_names_the_key(model, message):
    with pytest.raises(ValueError, match=message):
        pp.estimate_downtime(UPGRADE, [], reboot=False, model=model)


# --- the module on the controller, against the private APT root ------------------------------------

def run_module(args: dict, env: dict[str, str] | None = None) -> tuple[int, dict]:
    cmd = [str(VENV_BIN / "ansible"), "localhost", "-m", "itsop.change.package_plan_info", "-a", json.dumps(args),
           "--check"]
    full_env = base_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
                        **(env or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=REPO, check=False, timeout=180)
    return proc.returncode, json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


@needs_apt
def test_module_plans_an_upgrade_read_only(apt):
    apt.installed({"itsop-demo-web": "1.0.0"})
    before = {p: p.stat().st_mtime_ns for p in apt.root.rglob("*") if p.is_file()}
    rc, result = run_module({"packages": [{"name": "itsop-demo-web", "version": "1.1.0", "service": "itsop-demo-web"}],
                             "disk_paths": [str(apt.root)], "downtime_model": {"base_seconds": 5}},
                            env={"APT_CONFIG": str(apt.config)})
    assert rc == 0, result
    assert result["changed"] is False and result["manager"] == "apt"
    assert result["changes"] == UPGRADE
    assert result["simulation"][-2:] == ["install", "itsop-demo-web=1.1.0"]
    assert "--allow-downgrades" in result["simulation"]
    assert [s["name"] for s in result["services"]] == ["itsop-demo-web"]
    assert result["services"][0]["restart"] is True
    size = int(next(line.split()[1] for line in (FIXTURE_REPO / "Packages").read_text().split("\n\n")[1].splitlines()
                    if line.startswith("Size:")))
    assert result["download_bytes"] == size   # apt-cache show of 1.1.0
    assert result["downtime"]["terms"] == {"base": 5, "packages": 15, "service_restarts": 10, "reboot": 0,
                                           "health_check": 15}
    assert result["disk"][str(apt.root)]["free_bytes"] > 0
    after = {p: p.stat().st_mtime_ns for p in apt.root.rglob("*") if p.is_file()}
    assert after == before, "the simulation wrote to the APT state"


@needs_apt
def test_module_refuses_an_unavailable_version_naming_it(apt):
    rc, result = run_module({"packages": [{"name": "itsop-demo-web", "version": "9.9.9"}]},
                            env={"APT_CONFIG": str(apt.config)})
    assert rc != 0 and result["failed"] is True
    assert result["msg"].startswith("simulating the change failed:")
    assert "'9.9.9' for 'itsop-demo-web' was not found" in result["msg"]


def test_module_refuses_a_bad_downtime_model_before_querying_the_host(tmp_path):
    # a PATH with every tool of /usr/bin but apt-get and dnf: the model error comes first, then the
    # unsupported host
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in Path("/usr/bin").iterdir():
        if tool.name not in ("apt-get", "dnf"):
            (bin_dir / tool.name).symlink_to(tool)
    assert shutil.which("apt-get", path=str(bin_dir)) is None
    rc, result = run_module({"packages": [{"name": "x", "version": "1"}], "downtime_model": {"reboot": 1}},
                            env={"PATH": str(bin_dir)})
    assert rc != 0 and result["msg"].startswith("downtime_model.reboot: unknown key")
    rc, result = run_module({"packages": [{"name": "x", "version": "1"}]}, env={"PATH": str(bin_dir)})
    assert rc != 0
    assert result["msg"] == "unsupported host: neither apt-get nor dnf found; no change is planned"
