"""Issue 15, class 6 (pure functions): a signature's creation time against its keys' validity."""

from __future__ import annotations

import pytest

from ansible_collections.itsop.change.plugins.module_utils._artifact import gpg as G

PRIMARY = "053C09AB82232C61E966A6F9457FB060FED712C5"
SUBKEY = "1111111111111111111111111111111111111111"
T = 1767225600  # 2026-01-01T00:00:00Z, the signature's time


def key(created, expires=None, revoked=False, primary=PRIMARY):
    return {"primary": primary, "created": created, "expires": expires, "revoked": revoked,
            "validity": "r" if revoked else "-", "subkey": primary != PRIMARY}


def sig(created=T):
    return [{"signer_fingerprint": SUBKEY, "primary_fingerprint": PRIMARY, "created": created}]


def keys(primary=None, subkey=None):
    return {PRIMARY: primary or key(T - 1000), SUBKEY: subkey or key(T - 500)}


def reasons(keyset, signatures=None, now=T + 10, skew=300):
    return G.judge_signature_times(sig() if signatures is None else signatures, keyset, now, skew)


def test_valid_signature_has_no_reasons():
    assert reasons(keys()) == []
    assert reasons(keys(subkey=key(T - 500, expires=T + 1))) == []


@pytest.mark.parametrize("keyset, expected", [
    (keys(subkey=key(T + 1)), "before signing key %s was created" % SUBKEY),
    (keys(primary=key(T + 1)), "before primary key %s was created" % PRIMARY),
    (keys(subkey=key(T - 500, expires=T)), "after signing key %s expired" % SUBKEY),   # at expiry
    (keys(subkey=key(T - 500, expires=T - 1)), "after signing key %s expired" % SUBKEY),
    (keys(primary=key(T - 1000, expires=T - 1)), "after primary key %s expired" % PRIMARY),
    (keys(subkey=key(T - 500, revoked=True)), "signing key %s is revoked" % SUBKEY),
    (keys(primary=key(T - 1000, revoked=True)), "primary key %s is revoked" % PRIMARY),
    ({PRIMARY: key(T - 1000)}, "validity of signing key %s is unknown" % SUBKEY),
    ({}, "validity of signing key"),
    (keys(subkey=key(None)), "creation time of signing key"),
])
def test_invalid_times_and_keys(keyset, expected):
    got = reasons(keyset)
    assert any(expected in r for r in got), got


def test_future_dated_and_clock_skew():
    assert reasons(keys(), now=T - 300) == []           # exactly at the allowed skew
    got = reasons(keys(), now=T - 301)
    assert got == ["signature is dated 2026-01-01T00:00:00Z, in the future (now 2025-12-31T23:54:59Z, "
                   "allowed clock skew 300 s)"]
    assert reasons(keys(), now=T - 1, skew=0) != []


def test_unreadable_signature_time_fails():
    assert reasons(keys(), signatures=sig(created=None)) != []


def test_time_fields_epoch_and_iso():
    assert G._gpg_time("1767225600") == T
    assert G._gpg_time("20260101T000000") == T
    assert G._gpg_time("") is None and G._gpg_time("yesterday") is None


def test_every_signature_in_a_file_is_judged():
    late = {"signer_fingerprint": PRIMARY, "primary_fingerprint": PRIMARY, "created": T + 10 ** 6}
    got = reasons(keys(primary=key(T - 1000, expires=T + 1000)), signatures=[*sig(), late], now=T + 10 ** 7)
    assert len(got) == 1 and "after signing key %s expired" % PRIMARY in got[0]


def test_key_listing_parser():
    listing = "\n".join([
        "pub:e:255:22:457FB060FED712C5:1700000000:1700086400::u:::scSC:::::ed25519:::0:",
        f"fpr:::::::::{PRIMARY}:",
        "uid:e::::1700000000::X::Signer <s@example.test>::::::::::0:",
        "sub:r:255:22:AAAAAAAAAAAAAAAA:1700000100:::u:::s:::::ed25519::",
        f"fpr:::::::::{SUBKEY}:",
    ])
    parsed = G.parse_gpg_key_listing(listing)
    assert parsed[PRIMARY] == {"subkey": False, "validity": "e", "revoked": False, "created": 1700000000,
                               "expires": 1700086400, "primary": PRIMARY}
    assert parsed[SUBKEY]["revoked"] is True and parsed[SUBKEY]["primary"] == PRIMARY
    assert parsed[SUBKEY]["expires"] is None


def test_judge_gpg_status_checks_times_after_pins():
    status = "\n".join("[GNUPG:] " + line for line in (
        "NEWSIG", "GOODSIG 457FB060FED712C5 Signer",
        f"VALIDSIG {SUBKEY} 2026-01-01 {T} 0 4 0 22 8 00 {PRIMARY}"))
    expired = keys(subkey=key(T - 500, expires=T - 1))
    res = G.judge_gpg_status(status, [PRIMARY], expired, now=T + 10)
    assert res["verdict"] == "fail" and "expired" in res["reason"]
    assert G.judge_gpg_status(status, [PRIMARY], keys(), now=T + 10)["verdict"] == "pass"
    # an extra VALIDSIG without a GOODSIG is not accepted
    doubled = status + f"\n[GNUPG:] VALIDSIG {SUBKEY} 2026-01-01 {T} 0 4 0 22 8 00 {PRIMARY}"
    assert G.judge_gpg_status(doubled, [PRIMARY], keys(), now=T + 10)["verdict"] == "fail"
