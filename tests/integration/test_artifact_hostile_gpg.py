"""Issue 15, class 6: signatures dated outside their key's validity, or in the future.

Real gpg. Keys are generated at test time; signatures are post-dated with
``gpg --faked-system-time`` and the key's (or subkey's) expiry is moved before the signature
afterwards, which is what a holder of a key could do. gpg itself accepts all of these
(GOODSIG + VALIDSIG, exit 0): only the comparison of VALIDSIG's creation time with the key
validity and the clock catches them.
"""

from __future__ import annotations

import shutil
import time

import pytest

from ansible_collections.itsop.change.plugins.module_utils.artifact import verify_artifacts
from tests.fixtures.artifact_fixtures import GpgLab

pytestmark = pytest.mark.skipif(not shutil.which("gpg"), reason="needs gpg")

YEAR = 365 * 86400


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpgtime")
    lab = GpgLab()
    try:
        now = int(time.time())
        artifact = root / "app.tar.gz"
        artifact.write_bytes(b"release bytes\n" * 100)
        w = {"artifact": artifact, "now": now}
        # 1. a key that will expire in a year; one signature now, one dated two years ahead
        w["exp"] = lab.gen_key("Expiring <exp@example.test>")
        w["sig_exp_now"] = lab.sign(w["exp"], artifact, root / "exp-now.sig")
        w["sig_exp_late"] = lab.sign(w["exp"], artifact, root / "exp-late.sig", faked_time=str(now + 2 * YEAR))
        lab.set_expire(w["exp"], "1y")
        # 2. a key without expiry: signatures 60 s and 1 h in the future
        w["nox"] = lab.gen_key("No Expiry <nox@example.test>")
        w["sig_skew_small"] = lab.sign(w["nox"], artifact, root / "skew-60.sig", faked_time=str(now + 60))
        w["sig_future"] = lab.sign(w["nox"], artifact, root / "future-1h.sig", faked_time=str(now + 3600))
        # 3. a primary with a signing subkey; the subkey's expiry moves before the signature
        w["prim"] = lab.gen_key("Primary <prim@example.test>")
        w["sub"] = lab.add_signing_subkey(w["prim"])
        w["sig_sub_now"] = lab.sign(w["sub"] + "!", artifact, root / "sub-now.sig")
        w["sig_sub_late"] = lab.sign(w["sub"] + "!", artifact, root / "sub-late.sig",
                                     faked_time=str(now + 2 * YEAR))
        lab.set_expire(w["prim"], "1y", subkey=w["sub"])
        # 4. a primary whose own expiry moves before its (non-expiring) subkey's signature
        w["prim2"] = lab.gen_key("Primary Two <prim2@example.test>")
        w["sub2"] = lab.add_signing_subkey(w["prim2"])
        w["sig_sub2_late"] = lab.sign(w["sub2"] + "!", artifact, root / "sub2-late.sig",
                                      faked_time=str(now + 2 * YEAR))
        lab.set_expire(w["prim2"], "1y")
        w["keys"] = [lab.export(fpr, root / f"{name}.asc")
                     for name, fpr in (("exp", w["exp"]), ("nox", w["nox"]), ("prim", w["prim"]),
                                       ("prim2", w["prim2"]))]
        return w
    finally:
        lab.close()


def check(world, sig, pin, **kwargs):
    ev = verify_artifacts([{"path": str(world["artifact"]), "signature": str(world[sig])}],
                          gpg_keys=[str(k) for k in world["keys"]], gpg_fingerprints=[world[pin]], **kwargs)
    return ev["artifacts"][0]["checks"]["signature"]


def test_signature_within_validity_passes(world):
    res = check(world, "sig_sub_now", "prim")
    assert res["verdict"] == "pass", res
    assert res["signers"][0]["key_expires"] is not None  # the subkey's expiry was set to 1y
    res = check(world, "sig_exp_now", "exp")
    assert res["verdict"] == "pass", res
    assert res["signers"][0]["key_expires"] > res["signature_created"]


def test_signature_dated_after_key_expiry_fails(world):
    res = check(world, "sig_exp_late", "exp")
    assert res["gpg_rc"] == 0 and any(s.startswith("[GNUPG:] GOODSIG") for s in res["status"])
    assert res["verdict"] == "fail", res
    assert "expired" in res["reason"] and "in the future" in res["reason"]
    # even with the future check switched off by a huge skew, the expiry check alone fails it
    res = check(world, "sig_exp_late", "exp", gpg_max_clock_skew=10 * YEAR)
    assert res["verdict"] == "fail" and "after signing key %s expired" % world["exp"] in res["reason"], res
    assert "future" not in res["reason"]


def test_signature_after_signing_subkey_expiry_fails(world):
    res = check(world, "sig_sub_late", "prim", gpg_max_clock_skew=10 * YEAR)
    assert res["verdict"] == "fail", res
    assert res["signer_fingerprint"] == world["sub"]
    assert "after signing key %s expired" % world["sub"] in res["reason"]


def test_signature_after_primary_key_expiry_fails(world):
    res = check(world, "sig_sub2_late", "prim2", gpg_max_clock_skew=10 * YEAR)
    assert res["verdict"] == "fail", res
    assert "after primary key %s expired" % world["prim2"] in res["reason"]


def test_future_dated_signature_fails_beyond_clock_skew(world):
    res = check(world, "sig_future", "nox")
    assert res["gpg_rc"] == 0
    assert res["verdict"] == "fail" and "in the future" in res["reason"] and "300 s" in res["reason"], res
    assert check(world, "sig_skew_small", "nox")["verdict"] == "pass"
    strict = check(world, "sig_skew_small", "nox", gpg_max_clock_skew=0)
    assert strict["verdict"] == "fail" and "in the future" in strict["reason"]
    lenient = check(world, "sig_future", "nox", gpg_max_clock_skew=7200)
    assert lenient["verdict"] == "pass", lenient


def test_verifier_clock_is_what_counts(world):
    """A signature that was fine when made stays fine; judged at a later 'now' nothing changes,
    judged at an earlier 'now' (the signature did not exist yet) it is in the future."""
    later = check(world, "sig_exp_now", "exp", now=world["now"] + 3600)
    assert later["verdict"] == "pass", later
    earlier = check(world, "sig_exp_now", "exp", now=world["now"] - 3600)
    assert earlier["verdict"] == "fail" and "in the future" in earlier["reason"]


def test_module_option_gpg_max_clock_skew(world, tmp_path):
    from tests.integration.test_artifact_verify_playbook import PLAYBOOKS, run_json, task_result

    base = {"artifacts": [{"path": str(world["artifact"]), "signature": str(world["sig_future"])}],
            "gpg_keys": [str(k) for k in world["keys"]], "gpg_fingerprints": [world["nox"]],
            "clamav": {"enabled": False}}
    proc, out = run_json(PLAYBOOKS / "module.yml", {"verify_args": base}, tmp_path)
    assert proc.returncode != 0
    assert "in the future" in task_result(out, "Verify")["msg"]
    proc, out = run_json(PLAYBOOKS / "module.yml", {"verify_args": {**base, "gpg_max_clock_skew": 7200}},
                         tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert task_result(out, "Verify")["gpg"]["max_clock_skew"] == 7200
