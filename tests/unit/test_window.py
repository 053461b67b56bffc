"""Change window arithmetic (module_utils/window.py) and the change_window_info module (SOP 3.1)."""

from __future__ import annotations

import datetime
import json
import re
import subprocess

import pytest

from ansible_collections.itsop.change.plugins.module_utils import window as w
from tests.helpers import REPO, VENV_BIN, base_env

# The approved window of docs/examples/change-requests/security-patch-1.1.0.yml.
START = "2026-11-24T22:00:00+07:00"
END = "2026-11-25T02:00:00+07:00"


def status(now, grace=0, start=START, end=END, tz=None):
    return w.window_status(start, end, now=now, grace_minutes=grace, timezone=tz)


# --- where "now" falls -------------------------------------------------------------------------

@pytest.mark.parametrize(("now", "grace", "state", "is_open"), [
    ("2026-11-24T21:59:59+07:00", 0, "before", False),
    ("2026-11-24T22:00:00+07:00", 0, "inside", True),     # start is inside
    ("2026-11-25T00:00:00+07:00", 0, "inside", True),
    ("2026-11-25T02:00:00+07:00", 0, "inside", True),     # end is inside
    ("2026-11-25T02:00:01+07:00", 0, "after", False),     # no grace: closed one second later
    ("2026-11-25T02:00:01+07:00", 15, "grace", True),
    ("2026-11-25T02:15:00+07:00", 15, "grace", True),     # end + grace is still open
    ("2026-11-25T02:15:01+07:00", 15, "after", False),
    ("2026-11-23T22:00:00+07:00", 60, "before", False),   # grace never opens a window early
])
def test_state_and_open_at_the_boundaries(now, grace, state, is_open):
    result = status(now, grace)
    assert result["state"] == state
    assert result["open"] is is_open


def test_utc_fields_of_the_example_window():
    result = status("2026-11-24T23:30:00+07:00", 30)
    assert result["start_utc"] == "2026-11-24T15:00:00Z"
    assert result["end_utc"] == "2026-11-24T19:00:00Z"
    assert result["close_utc"] == "2026-11-24T19:30:00Z"
    assert result["now_utc"] == "2026-11-24T16:30:00Z"
    assert result["grace_minutes"] == 30
    assert result["seconds_until_start"] == 0
    assert result["seconds_until_close"] == 3 * 3600


def test_now_in_another_offset_is_compared_as_the_same_instant():
    # 14:59:59Z is one second before 22:00 in Jakarta; 15:00:00Z is the start itself
    assert status("2026-11-24T14:59:59Z")["state"] == "before"
    assert status("2026-11-24T15:00:00Z")["state"] == "inside"
    assert status("2026-11-24T17:00:00+02:00")["state"] == "inside"


def test_seconds_until_start_counts_down_and_a_moment_ahead_is_never_zero():
    assert status("2026-11-24T21:00:00+07:00")["seconds_until_start"] == 3600
    half_second_before = status("2026-11-24T14:59:59.5Z")
    assert half_second_before["state"] == "before"
    assert half_second_before["seconds_until_start"] == 1
    assert "(now 2026-11-24T14:59:59Z, 1 s to go)" in w.describe(half_second_before)


def test_seconds_until_close_includes_grace_and_is_zero_once_closed():
    assert status("2026-11-25T02:00:00+07:00", 10)["seconds_until_close"] == 600
    assert status("2026-11-25T02:09:59.25+07:00", 10)["seconds_until_close"] == 1
    assert status("2026-11-25T03:00:00+07:00", 10)["seconds_until_close"] == 0


def test_default_now_is_the_clock():
    now = datetime.datetime.now(datetime.timezone.utc)
    around = w.window_status((now - datetime.timedelta(minutes=5)).isoformat(),
                             (now + datetime.timedelta(minutes=5)).isoformat())
    assert around["state"] == "inside" and around["open"] is True
    assert 0 < around["seconds_until_close"] <= 300
    past = w.window_status((now - datetime.timedelta(hours=2)).isoformat(),
                           (now - datetime.timedelta(hours=1)).isoformat())
    assert past["state"] == "after"


def test_aware_datetimes_are_accepted():
    jakarta = datetime.timezone(datetime.timedelta(hours=7))
    result = w.window_status(datetime.datetime(2026, 11, 24, 22, tzinfo=jakarta),
                             datetime.datetime(2026, 11, 25, 2, tzinfo=jakarta),
                             now=datetime.datetime(2026, 11, 24, 15, 30, tzinfo=datetime.timezone.utc))
    assert result["state"] == "inside" and result["start_utc"] == "2026-11-24T15:00:00Z"


# --- time zones --------------------------------------------------------------------------------

@pytest.mark.parametrize("day", ["2026-01-15", "2026-04-15", "2026-07-15", "2026-10-25"])
def test_naive_timestamps_default_to_asia_jakarta_utc_plus_7_all_year(day):
    # Jakarta keeps UTC+7 all year (no daylight saving): 22:00 is always 15:00Z
    result = w.window_status(f"{day} 22:00", f"{day} 23:00", now=f"{day} 22:30")
    assert result["start_utc"] == f"{day}T15:00:00Z"
    assert result["now_utc"] == f"{day}T15:30:00Z"
    assert result["state"] == "inside"
    explicit = w.window_status(f"{day} 22:00", f"{day} 23:00", now=f"{day} 22:30", timezone="Asia/Jakarta")
    assert explicit == result


def test_naive_timestamps_in_a_daylight_saving_zone_follow_its_offset():
    winter = w.window_status("2026-01-15T22:00", "2026-01-15T23:00", now="2026-01-15T22:30",
                             timezone="Europe/Berlin")
    summer = w.window_status("2026-07-15T22:00", "2026-07-15T23:00", now="2026-07-15T22:30",
                             timezone="Europe/Berlin")
    assert winter["start_utc"] == "2026-01-15T21:00:00Z"   # CET, UTC+1
    assert summer["start_utc"] == "2026-07-15T20:00:00Z"   # CEST, UTC+2


def test_window_length_is_real_elapsed_time_across_a_dst_change():
    # 01:00-04:00 local on the night Berlin goes back one hour lasts four real hours;
    # the same wall-clock window in Jakarta lasts three.
    berlin = w.window_status("2026-10-25T01:00", "2026-10-25T04:00", now="2026-10-25T01:00",
                             timezone="Europe/Berlin")
    jakarta = w.window_status("2026-10-25T01:00", "2026-10-25T04:00", now="2026-10-25T01:00",
                              timezone="Asia/Jakarta")
    assert berlin["seconds_until_close"] == 4 * 3600
    assert jakarta["seconds_until_close"] == 3 * 3600


def test_timestamps_with_the_zones_own_offset_are_accepted():
    jakarta = w.window_status(START, END, now="2026-11-24T16:00:00Z", timezone="Asia/Jakarta")
    unclaimed = w.window_status(START, END, now="2026-11-24T16:00:00Z")  # no zone given: offsets as written
    assert jakarta == unclaimed
    assert jakarta["start_utc"] == "2026-11-24T15:00:00Z"
    # now is an instant, not part of the window: any offset
    assert w.window_status(START, END, now="2026-11-24T17:00:00+01:00", timezone="Asia/Jakarta")["state"] == "inside"


# --- an explicit offset that disagrees with the time zone (issue 15, class 13) -------------------

def test_two_hour_window_that_became_fourteen_hours_is_refused_naming_both_offsets():
    # 22:00 in Jakarta to midnight, but the end was written with New York's offset: 05:00Z, 14 hours later
    with pytest.raises(ValueError) as info:
        w.window_status("2026-11-24T22:00", "2026-11-25T00:00:00-05:00", now=START, timezone="Asia/Jakarta")
    assert str(info.value) == ("end: offset -05:00 given in 2026-11-25T00:00:00-05:00 disagrees with timezone "
                               "Asia/Jakarta (+07:00 at that instant, where this time is 2026-11-25T12:00:00+07:00)")


@pytest.mark.parametrize(("start", "end", "tz", "field", "given", "zone_offset"), [
    ("2026-11-24T22:00:00Z", END, "Asia/Jakarta", "start", "+00:00", "+07:00"),       # local time written with Z
    (START, END, "UTC", "start", "+07:00", "+00:00"),
    ("2026-07-15T22:00:00+01:00", "2026-07-15T23:00:00+02:00", "Europe/Berlin", "start", "+01:00", "+02:00"),  # CEST
    ("2026-01-15T22:00:00+01:00", "2026-01-15T23:00:00+02:00", "Europe/Berlin", "end", "+02:00", "+01:00"),   # CET
])
def test_offset_disagreeing_with_the_zone_is_refused(start, end, tz, field, given, zone_offset):
    with pytest.raises(ValueError, match=rf"^{field}: offset \{given} given in .* disagrees with timezone {tz} "
                                         rf"\({re.escape(zone_offset)} at that instant"):
        w.window_status(start, end, now=start, timezone=tz)


@pytest.mark.parametrize(("start", "end"), [
    ("2026-10-25T02:30:00+02:00", "2026-10-25T02:45:00+01:00"),  # both sides of Berlin's repeated hour
    ("2026-03-29T01:59:00+01:00", "2026-03-29T03:00:00+02:00"),  # across the spring gap
])
def test_offsets_around_a_daylight_saving_change_that_agree_are_accepted(start, end):
    result = w.window_status(start, end, now=start, timezone="Europe/Berlin")
    assert result["state"] == "inside"


def test_module_refuses_a_disagreeing_offset():
    rc, result = module(start="2026-11-24T22:00:00Z", end="2026-11-25T02:00:00+07:00", timezone="Asia/Jakarta")
    assert rc != 0
    assert result["msg"] == ("change window: start: offset +00:00 given in 2026-11-24T22:00:00Z disagrees with "
                             "timezone Asia/Jakarta (+07:00 at that instant, where this time is "
                             "2026-11-25T05:00:00+07:00)")


# --- bad input: ValueError naming the field ------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"start": "tomorrow night"}, r"^start: 'tomorrow night' is not an ISO-8601 timestamp"),
    ({"start": "2026-13-01T22:00:00+07:00"}, r"^start: '2026-13-01T22:00:00\+07:00' is not an ISO-8601 timestamp"),
    ({"end": ""}, r"^end: '' is not an ISO-8601 timestamp"),
    ({"end": None}, r"^end: None is not an ISO-8601 timestamp"),
    ({"now": "25/11/2026 01:00"}, r"^now: '25/11/2026 01:00' is not an ISO-8601 timestamp"),
    ({"end": START}, r"^end: window end 2026-11-24T15:00:00Z is not after start 2026-11-24T15:00:00Z$"),
    ({"end": "2026-11-24T21:00:00+07:00"}, r"^end: window end 2026-11-24T14:00:00Z is not after start"),
    ({"grace_minutes": -1}, r"^grace_minutes: must be a whole number of minutes, 0 or more; got -1$"),
    ({"grace_minutes": None}, r"^grace_minutes: .* got None$"),
    ({"grace_minutes": "15"}, r"^grace_minutes: .* got '15'$"),
    ({"grace_minutes": 1.5}, r"^grace_minutes: .* got 1.5$"),
    ({"grace_minutes": True}, r"^grace_minutes: .* got True$"),
    ({"timezone": "Asia/Jakrta"}, r"^timezone: unknown time zone Asia/Jakrta$"),
])
def test_bad_input_names_the_field(kwargs, message):
    args = {"start": START, "end": END, "now": "2026-11-24T23:00:00+07:00", "grace_minutes": 0, "timezone": None}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        w.window_status(args.pop("start"), args.pop("end"), **args)


def test_unknown_timezone_is_refused_even_when_every_timestamp_has_an_offset():
    with pytest.raises(ValueError, match=r"^timezone: unknown time zone Mars/Olympus_Mons$"):
        w.window_status(START, END, now=START, timezone="Mars/Olympus_Mons")


# --- describe() ----------------------------------------------------------------------------------

def test_describe_each_state():
    assert w.describe(status("2026-11-24T21:00:00+07:00")) == (
        "the change window opens at 2026-11-24T15:00:00Z (now 2026-11-24T14:00:00Z, 3600 s to go)")
    assert w.describe(status("2026-11-24T23:00:00+07:00")) == (
        "inside the change window 2026-11-24T15:00:00Z - 2026-11-24T19:00:00Z (now 2026-11-24T16:00:00Z)")
    assert w.describe(status("2026-11-25T02:05:00+07:00", 10)) == (
        "inside the grace period after the window end 2026-11-24T19:00:00Z (closes 2026-11-24T19:10:00Z;"
        " now 2026-11-24T19:05:00Z)")
    assert w.describe(status("2026-11-25T03:00:00+07:00", 10)) == (
        "the change window closed at 2026-11-24T19:10:00Z (end 2026-11-24T19:00:00Z + 10 min grace;"
        " now 2026-11-24T20:00:00Z)")


# --- the module, run by ansible on the controller --------------------------------------------------

def module(check: bool = False, **args) -> tuple[int, dict]:
    cmd = [str(VENV_BIN / "ansible"), "localhost", "-m", "itsop.change.change_window_info", "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    env = base_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False, timeout=120)
    out = json.loads(proc.stdout)
    return proc.returncode, out["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_module_reports_the_window_and_never_changes_anything():
    rc, result = module(check=True, start="2026-11-24T22:00", end="2026-11-25T02:00", grace_minutes=5,
                        now="2026-11-25T02:03")
    assert rc == 0, result
    assert result["changed"] is False
    assert result["state"] == "grace" and result["open"] is True
    assert result["close_utc"] == "2026-11-24T19:05:00Z"   # naive times read in the default Asia/Jakarta
    assert result["seconds_until_close"] == 120
    assert result["message"].startswith("inside the grace period after the window end 2026-11-24T19:00:00Z")


def test_module_fails_when_closed_only_if_asked():
    rc, result = module(start=START, end=END, now="2026-11-25T03:00:00+07:00")
    assert rc == 0 and result["state"] == "after" and result["open"] is False
    rc, result = module(start=START, end=END, now="2026-11-25T03:00:00+07:00", fail_when_closed=True)
    assert rc != 0 and result["failed"] is True
    assert result["msg"] == ("outside the approved change window: the change window closed at 2026-11-24T19:00:00Z"
                             " (end 2026-11-24T19:00:00Z + 0 min grace; now 2026-11-24T20:00:00Z)")
    assert result["state"] == "after"


def test_module_bad_input_messages_name_the_field():
    rc, result = module(start="24-11-2026 22:00", end=END)
    assert rc != 0
    assert result["msg"].startswith("change window: start: '24-11-2026 22:00' is not an ISO-8601 timestamp")
    rc, result = module(start=START, end=END, grace_minutes=-5)
    assert rc != 0 and result["msg"] == "grace_minutes: must be 0 or more, got -5"
    rc, result = module(start="2026-11-24T22:00", end="2026-11-25T02:00", timezone="Asia/Jakrta")
    assert rc != 0 and result["msg"] == "change window: timezone: unknown time zone Asia/Jakrta"
