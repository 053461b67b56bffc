"""Issue 15, class 5: malware inside packages that clamscan does not open.

Real .deb files are built at test time with ``dpkg-deb --build`` (gzip, xz, zstd and no
compression of data.tar); EICAR sits in a zip inside the package. Real clamscan with a custom
database. RPMs are assembled by hand (rpmbuild is not installed here).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ansible_collections.itsop.change.plugins.module_utils.artifact import verify_artifacts
from tests.fixtures.artifact_fixtures import (
    EICAR,
    ar_bytes,
    build_deb,
    handmade_deb,
    rpm_bytes,
    tar_bytes,
    write_ndb,
    zip_bytes,
)

pytestmark = pytest.mark.skipif(not (shutil.which("clamscan") and shutil.which("dpkg-deb")),
                                reason="needs clamscan and dpkg-deb")

COMPRESSIONS = ["gzip", "xz", "zstd", "none"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("debs")
    write_ndb(root / "db")
    payload = zip_bytes({"docs/readme.txt": b"read me\n", "eicar.com": EICAR})
    evil = {c: build_deb(root, "evil", {"usr/share/evil/payload.zip": payload,
                                        "usr/share/doc/evil/copyright": b"GPL\n"}, c)
            for c in COMPRESSIONS}
    clean = {c: build_deb(root, "clean", {"usr/share/clean/readme.txt": b"hello\n" * 500,
                                          "usr/share/clean/data.zip": zip_bytes({"a.txt": b"a\n"}),
                                          # empty files are common in real packages; clamscan
                                          # answers "Empty file" for them, which is no verdict
                                          "usr/share/clean/empty.conf": b""}, c)
             for c in COMPRESSIONS}
    return {"root": root, "db": root / "db", "evil": evil, "clean": clean, "payload": payload}


def scan(lab, tmp_path, paths, **clamav):
    """verify_artifacts with a scan only; unpacking into a directory the test can inspect."""
    unpack_dir = tmp_path / "unpack"
    unpack_dir.mkdir(exist_ok=True)
    options = {"database": str(lab["db"])}
    options.update(clamav)
    unpack = {"tmpdir": str(unpack_dir)}
    unpack.update(options.pop("unpack", {}))
    ev = verify_artifacts([{"path": str(p)} for p in paths], clamav=options, unpack=unpack)
    # the private unpack directories are gone afterwards, whatever the verdict
    assert list(unpack_dir.iterdir()) == []
    return ev


def malware(ev, index=0):
    return ev["artifacts"][index]["checks"]["malware_scan"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_eicar_in_zip_in_deb_is_found(lab, tmp_path, compression):
    deb = lab["evil"][compression]
    ev = scan(lab, tmp_path, [deb])
    check = malware(ev)
    assert check["verdict"] == "fail", check
    assert "Eicar-Test-Custom" in (check["signature"] or "")
    assert "malware found" in check["reason"]
    # the finding names where in the package the malware is
    members = [f["member"] for f in check["member_findings"]]
    assert any(m.endswith("usr/share/evil/payload.zip") for m in members), members
    data_member = {"gzip": "data.tar.gz", "xz": "data.tar.xz", "zstd": "data.tar.zst", "none": "data.tar"}
    assert any(f"!{data_member[compression]}!" in m for m in members), members
    assert check["unpacked"]["members"] >= 4 and check["unpacked"]["error"] is None
    assert {"member": deb.name, "format": "ar"} in check["unpacked"]["containers"]
    assert ev["passed"] is False


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_clean_deb_still_passes(lab, tmp_path, compression):
    ev = scan(lab, tmp_path, [lab["clean"][compression]])
    check = malware(ev)
    assert check["verdict"] == "pass", check
    assert check["reason"].startswith("clean (artifact and ")
    assert check["member_findings"] == []
    assert check["unpacked"]["members"] >= 4  # debian-binary, control.tar, data.tar, files
    assert ev["passed"] is True


def test_deb_inside_zip_and_deb_inside_deb_are_found(lab, tmp_path):
    outer_zip = tmp_path / "bundle.zip"
    outer_zip.write_bytes(zip_bytes({"pkgs/evil.deb": lab["evil"]["xz"].read_bytes()}))
    nested = build_deb(tmp_path, "carrier", {"var/cache/evil.deb": lab["evil"]["zstd"].read_bytes()}, "xz")
    ev = scan(lab, tmp_path, [outer_zip, nested])
    for index in (0, 1):
        check = malware(ev, index)
        assert check["verdict"] == "fail", check
        assert "Eicar-Test-Custom" in check["signature"]


def test_rpm_payload_is_unpacked_gzip_and_xz(lab, tmp_path):
    paths = []
    for compressor in ("gzip", "xz"):
        rpm = tmp_path / f"evil-{compressor}.rpm"
        rpm.write_bytes(rpm_bytes({"./usr/lib/evil/payload.zip": lab["payload"]}, compressor))
        paths.append(rpm)
    clean = tmp_path / "clean.rpm"
    clean.write_bytes(rpm_bytes({"./usr/lib/clean/readme": b"clean\n"}))
    paths.append(clean)
    ev = scan(lab, tmp_path, paths)
    for index in (0, 1):
        check = malware(ev, index)
        assert check["verdict"] == "fail", check
        assert any(f["member"].endswith("!<payload>!./usr/lib/evil/payload.zip") for f in check["member_findings"])
    assert malware(ev, 2)["verdict"] == "pass", malware(ev, 2)


@pytest.mark.parametrize("case", ["truncated-ar", "corrupt-gzip", "rpm-unknown-compressor", "thin-ar",
                                  "encrypted-zip-member-flag"])
def test_what_cannot_be_unpacked_fails_closed(lab, tmp_path, case):
    good = lab["clean"]["gzip"].read_bytes()
    path = tmp_path / f"{case}.deb"
    if case == "truncated-ar":
        path.write_bytes(good[:-200])
    elif case == "corrupt-gzip":
        data = tar_bytes({"./usr/share/x": b"x" * 10000}, "gz")
        path.write_bytes(handmade_deb(data[:40] + b"\xff" * 64 + data[104:]))
    elif case == "rpm-unknown-compressor":
        path = tmp_path / "bogus.rpm"
        path.write_bytes(rpm_bytes({"./x": b"clean\n"}, "bogus"))
    elif case == "thin-ar":
        path.write_bytes(b"!<thin>\n" + good[8:])
    else:
        raw = bytearray(zip_bytes({"a.txt": b"clean text\n"}))
        raw[6] |= 0x01  # general purpose flag: encrypted
        raw[raw.rfind(b"PK\x01\x02") + 8] |= 0x01
        path.write_bytes(handmade_deb(tar_bytes({"./usr/share/a.zip": bytes(raw)}, "gz")))
    check = malware(scan(lab, tmp_path, [path]))
    assert check["verdict"] == "fail", check
    assert "cannot unpack" in check["reason"], check["reason"]
    assert check["unpacked"]["error"]


def test_zstd_without_the_zstd_program_fails_closed(lab, tmp_path):
    ev = scan(lab, tmp_path, [lab["clean"]["zstd"]], unpack={"zstd_binary": str(tmp_path / "no-zstd")})
    check = malware(ev)
    assert check["verdict"] == "fail"
    assert "zstd" in check["unpacked"]["error"] and "not found" in check["unpacked"]["error"]


def test_limits_total_size_member_count_and_nesting(lab, tmp_path):
    # 8 MiB of zeros: a few KiB compressed, beyond a 4 MiB unpack budget
    bomb = build_deb(tmp_path, "bomb", {"usr/share/zeros.bin": b"\0" * (8 * 1024 * 1024)}, "xz")
    assert bomb.stat().st_size < 100 * 1024
    many = build_deb(tmp_path, "many", {f"usr/share/many/f{i}.txt": b"x\n" for i in range(40)}, "gzip")
    deep = lab["clean"]["gzip"]
    for level in range(4):
        deep = build_deb(tmp_path, f"deep{level}", {"var/inner.deb": deep.read_bytes()}, "gzip")
    ev = scan(lab, tmp_path, [bomb], max_filesize="4M", max_scansize="4M")
    assert "exceed the limit of 4194304 bytes" in malware(ev)["unpacked"]["error"] or \
        "exceed twice the limit" in malware(ev)["unpacked"]["error"], malware(ev)
    ev = scan(lab, tmp_path, [many], max_files=20)
    assert malware(ev)["verdict"] == "fail"
    assert "more than 20 members" in malware(ev)["unpacked"]["error"]
    ev = scan(lab, tmp_path, [deep], max_recursion=4)
    assert malware(ev)["verdict"] == "fail"
    assert "nested deeper than 4 levels" in malware(ev)["unpacked"]["error"]
    # the same packages within generous limits pass: the limits, not the content, failed them
    ev = scan(lab, tmp_path, [many, deep], max_files=1000, max_recursion=17)
    assert [malware(ev, i)["verdict"] for i in (0, 1)] == ["pass", "pass"], ev["artifacts"]


def test_unpacking_time_limit_fails_closed(lab, tmp_path):
    ev = scan(lab, tmp_path, [lab["clean"]["xz"]], unpack={"timeout": 0})
    assert malware(ev)["verdict"] == "fail"
    assert "longer than 0 seconds" in malware(ev)["unpacked"]["error"]


def test_member_names_never_become_paths(lab, tmp_path):
    """Traversal names, absolute names and symlinks inside a package create nothing outside the
    private directory; the content behind a hostile name is still scanned."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    data = tar_bytes({"../../../../escape.zip": zip_bytes({"eicar.com": EICAR}),
                      str(outside / "absolute.txt"): b"absolute\n",
                      "./usr/share/\x1b[31mred\u202eevil.zip": zip_bytes({"e.com": EICAR})},
                     "gz", symlinks={"./usr/share/link": str(victim), "../../link2": "/etc/passwd"})
    deb = tmp_path / "traversal.deb"
    deb.write_bytes(handmade_deb(data))
    cwd_before = sorted(os.listdir(Path.cwd()))
    ev = scan(lab, tmp_path, [deb])
    check = malware(ev)
    assert check["verdict"] == "fail" and "Eicar-Test-Custom" in check["signature"]
    assert list(outside.iterdir()) == []
    assert sorted(os.listdir(Path.cwd())) == cwd_before
    assert not (tmp_path.parent.parent / "escape.zip").exists()
    # control and bidi characters reach the evidence escaped
    members = [f["member"] for f in check["member_findings"]]
    assert any(m.endswith("!./usr/share/\\u001b[31mred\\u202eevil.zip") for m in members), members
    assert all("\x1b" not in m and "\u202e" not in m for m in members)
    assert "\x1b" not in check["reason"] and "\u202e" not in check["reason"]


def test_ar_with_gnu_long_names_and_odd_sizes(lab, tmp_path):
    long_name = b"a-very-long-member-name-beyond-sixteen.zip"
    table = long_name + b"/\n"
    header = b"//".ljust(16) + b"".ljust(32) + str(len(table)).encode().ljust(10) + b"`\n"
    raw = ar_bytes([(b"odd", b"abc")])
    member = b"/0".ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8)
    payload = zip_bytes({"eicar.com": EICAR})
    member += str(len(payload)).encode().ljust(10) + b"`\n" + payload + (b"\n" if len(payload) % 2 else b"")
    path = tmp_path / "long.a"
    path.write_bytes(raw + header + table + member)
    check = malware(scan(lab, tmp_path, [path]))
    assert check["verdict"] == "fail" and check["unpacked"]["error"] is None, check
    assert any(f["member"].endswith("!" + long_name.decode()) for f in check["member_findings"]), check


def test_module_reports_malware_in_deb(lab, tmp_path):
    """Through ansible-playbook: the module fails naming the package and the member."""
    from tests.integration.test_artifact_verify_playbook import PLAYBOOKS, run_json, task_result

    deb = lab["evil"]["zstd"]
    args = {"verify_args": {"artifacts": [{"path": str(deb)}, {"path": str(lab["clean"]["xz"])}],
                            "clamav": {"database": str(lab["db"]), "unpack_tmpdir": str(tmp_path)}}}
    proc, out = run_json(PLAYBOOKS / "module.yml", args, tmp_path)
    assert proc.returncode != 0
    res = task_result(out, "Verify")
    assert res["failed_artifacts"] == [deb.name]
    assert "usr/share/evil/payload.zip" in res["msg"]
    assert res["artifacts"][1]["checks"]["malware_scan"]["verdict"] == "pass"
    assert res["scanner"]["unpack"]["timeout"] == 600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("itsop-unpack-")] == []


def test_zip_entry_count_is_checked_before_reading_the_directory(lab, tmp_path):
    many = tmp_path / "many.zip"
    many.write_bytes(zip_bytes({f"f{i}.txt": b"x" for i in range(50)}))
    check = malware(scan(lab, tmp_path, [many], max_files=20))
    assert check["verdict"] == "fail"
    assert "zip declares 50 entries, more than 20 members" in check["unpacked"]["error"], check


def test_huge_tar_header_is_refused_not_read_into_memory(lab, tmp_path):
    """A pax header of 20 MiB (a few KiB compressed) is refused instead of being allocated."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("./usr/share/x.txt")
        info.pax_headers = {"comment": "A" * (20 * 1024 * 1024)}
        info.size = 2
        tf.addfile(info, io.BytesIO(b"x\n"))
    deb = tmp_path / "paxbomb.deb"
    deb.write_bytes(handmade_deb(buf.getvalue()))
    assert deb.stat().st_size < 1024 * 1024
    check = malware(scan(lab, tmp_path, [deb]))
    assert check["verdict"] == "fail"
    assert "single header of" in check["unpacked"]["error"], check["unpacked"]


def test_data_after_the_end_of_a_tar_is_scanned(lab, tmp_path):
    """dpkg stops at the tar's end-of-archive blocks; bytes hidden after them are scanned too."""
    import gzip

    tar = tar_bytes({"./usr/share/readme": b"clean\n"})
    hidden = gzip.compress(tar + b"\0" * 4096 + zip_bytes({"eicar.com": EICAR}))
    deb = tmp_path / "trailing.deb"
    deb.write_bytes(handmade_deb(hidden))
    check = malware(scan(lab, tmp_path, [deb]))
    assert check["verdict"] == "fail", check
    assert any("<data after the end of the archive>" in f["member"] for f in check["member_findings"]), check


def test_cpio_odc_and_newc_archives_are_unpacked(lab, tmp_path):
    payload = zip_bytes({"eicar.com": EICAR})
    name = b"usr/lib/p.zip\0"
    odc = (b"070707" + b"%06o" % 0 + b"%06o" % 1 + b"%06o" % 0o100644 + b"%06o" % 0 + b"%06o" % 0
           + b"%06o" % 1 + b"%06o" % 0 + b"%011o" % 0 + b"%06o" % len(name) + b"%011o" % len(payload)
           + name + payload)
    trailer = b"TRAILER!!!\0"
    odc += (b"070707" + b"%06o" % 0 * 7 + b"%011o" % 0 + b"%06o" % len(trailer) + b"%011o" % 0 + trailer)
    path = tmp_path / "payload.cpio"
    path.write_bytes(odc)
    check = malware(scan(lab, tmp_path, [path]))
    assert check["verdict"] == "fail" and check["unpacked"]["error"] is None, check
    assert any(f["member"] == "payload.cpio!usr/lib/p.zip" for f in check["member_findings"]), check


@pytest.mark.parametrize("case", ["lzip-in-deb", "skippable-zstd-in-deb", "misnamed-data-member",
                                  "not-a-deb", "compress-in-tar"])
def test_content_that_promises_an_archive_is_unpacked_or_fails(lab, tmp_path, case):
    """A consumer (dpkg, tar's auto-detection) could decode these; the scanner must not be
    handed them as opaque bytes."""
    tar = tar_bytes({"./usr/share/p.zip": zip_bytes({"eicar.com": EICAR})})
    path = tmp_path / f"{case}.deb"
    if case == "lzip-in-deb":
        path.write_bytes(handmade_deb(b"LZIP\x01" + os.urandom(200), "data.tar.lz"))
    elif case == "skippable-zstd-in-deb":
        if not shutil.which("zstd"):
            pytest.skip("needs zstd")
        import subprocess

        frame = subprocess.run(["zstd", "-q", "-c"], input=tar, capture_output=True, check=True).stdout
        skippable = b"\x50\x2a\x4d\x18" + (16).to_bytes(4, "little") + b"\0" * 16
        path.write_bytes(handmade_deb(skippable + frame, "data.tar.zst"))
    elif case == "misnamed-data-member":
        path.write_bytes(handmade_deb(b"\x00garbage that is no tar" * 40, "data.tar.xz"))
    elif case == "not-a-deb":
        path.write_bytes(b"just text, but named like a package\n")
    else:
        path = tmp_path / "bundle.tar"
        path.write_bytes(tar_bytes({"./payload.tar.Z": b"\x1f\x9d\x90" + os.urandom(100)}))
    check = malware(scan(lab, tmp_path, [path]))
    assert check["verdict"] == "fail", check
    if case == "skippable-zstd-in-deb":
        # unpacked after all: the malware behind the skippable frame is found
        assert "Eicar-Test-Custom" in (check["signature"] or ""), check
        assert check["unpacked"]["error"] is None
    else:
        assert "cannot be scanned" in check["unpacked"]["error"], check["unpacked"]
