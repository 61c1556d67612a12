"""pbx.bans: refusals per (address, user), scanner bans, trusted networks, the
failed-login log budget; on a fake clock."""

from __future__ import annotations

import pytest

from pbx.bans import BanEntry, BanList, BanPolicy, FailureLog, Verdict, parse_network
from pbx.errors import ConfigError

IP = "192.0.2.10"
T0 = 1_000_000.0

POLICY = BanPolicy(
    user_failures=3, user_window=600, refuse_seconds=300, scan_users=5, scan_window=60
)


def test_one_user_failing_is_refused_from_that_address_only() -> None:
    bans = BanList(POLICY)
    verdicts = [bans.record_failure(IP, "1001", T0 + i) for i in range(3)]
    assert verdicts == [Verdict.RETRY, Verdict.RETRY, Verdict.REFUSE]
    assert bans.is_refused(IP, "1001", T0 + 3)
    assert bans.refusing(IP, T0 + 3)
    assert not bans.is_banned(IP, T0 + 3)
    assert not bans.is_refused(IP, "1002", T0 + 3)
    assert not bans.is_refused("192.0.2.99", "1001", T0 + 3)
    # Further failures of the refused pair change nothing (and are not REFUSE again).
    assert bans.record_failure(IP, "1001", T0 + 4) is Verdict.IGNORED
    # Another user from the same address (the office NAT) starts from zero.
    assert bans.record_failure(IP, "1002", T0 + 5) is Verdict.RETRY
    assert bans.is_refused(IP, "1001", T0 + 2 + 299.9)
    assert not bans.refusing(IP, T0 + 2 + 300)
    assert not bans.is_refused(IP, "1001", T0 + 2 + 300)


def test_user_failures_count_within_a_window_from_the_first() -> None:
    bans = BanList(POLICY)
    assert bans.record_failure(IP, "1001", T0) is Verdict.RETRY
    assert bans.record_failure(IP, "1001", T0 + 300) is Verdict.RETRY
    # user_window (600 s) has passed since the first: the count starts again.
    assert bans.record_failure(IP, "1001", T0 + 600) is Verdict.RETRY
    assert bans.record_failure(IP, "1001", T0 + 650) is Verdict.RETRY
    assert bans.record_failure(IP, "1001", T0 + 1199) is Verdict.REFUSE


def test_scanner_of_many_users_bans_the_address() -> None:
    bans = BanList(POLICY)
    verdicts = [bans.record_failure(IP, f"u{i}", T0 + i) for i in range(5)]
    assert verdicts == [Verdict.RETRY] * 4 + [Verdict.BAN]
    assert bans.is_banned(IP, T0 + 5)
    assert bans.record_failure(IP, "u9", T0 + 6) is Verdict.IGNORED
    assert bans.is_banned(IP, T0 + 4 + 599.9)
    assert not bans.is_banned(IP, T0 + 4 + 600)
    assert not bans.is_banned("192.0.2.99", T0 + 5)


def test_users_failing_far_apart_are_no_scanner() -> None:
    bans = BanList(POLICY)
    assert {bans.record_failure(IP, f"u{i}", T0 + 61 * i) for i in range(20)} == {Verdict.RETRY}
    assert not bans.is_banned(IP, T0 + 61 * 20)


def test_trusted_network_is_never_banned_whole_but_users_are_refused() -> None:
    bans = BanList(POLICY, trusted=("192.0.2.0/24",))
    for i in range(30):
        assert bans.record_failure(IP, f"u{i}", T0 + i) is Verdict.RETRY
    assert not bans.is_banned(IP, T0 + 30)
    assert [bans.record_failure(IP, "u0", T0 + 31 + i) for i in range(2)] == [
        Verdict.RETRY,
        Verdict.REFUSE,
    ]
    assert bans.is_trusted(IP) and not bans.is_trusted("198.51.100.1")
    # Trusting an address that is banned lifts its ban.
    other = BanList(POLICY)
    for i in range(5):
        other.record_failure("198.51.100.1", f"u{i}", T0)
    assert other.is_banned("198.51.100.1", T0)
    other.set_trusted(["198.51.100.0/28"])
    assert not other.is_banned("198.51.100.1", T0)


def test_success_resets_that_users_failures() -> None:
    bans = BanList(POLICY)
    for i in range(2):
        bans.record_failure(IP, "1001", T0 + i)
    bans.record_success(IP, "1001")
    assert len(bans) == 0
    assert bans.record_failure(IP, "1001", T0 + 3) is Verdict.RETRY
    assert bans.record_failure(IP, "1001", T0 + 4) is Verdict.RETRY


def test_entries_and_lift() -> None:
    bans = BanList(POLICY)
    for _ in range(3):
        bans.record_failure(IP, "1001", T0)
    for i in range(5):
        bans.record_failure("198.51.100.1", f"u{i}", T0)
    assert bans.entries(T0 + 10) == [
        BanEntry("192.0.2.10", "1001", 290, "repeated failed logins"),
        BanEntry("198.51.100.1", None, 590, "scanner: failed logins for many users"),
    ]
    assert bans.lift("198.51.100.1") == 1
    assert not bans.is_banned("198.51.100.1", T0 + 10)
    assert bans.lift("198.51.100.1") == 0
    assert bans.lift(IP, "1002") == 0
    assert bans.lift(IP, "1001") == 1
    assert not bans.is_refused(IP, "1001", T0 + 10)
    assert bans.entries(T0 + 10) == []
    # The pair starts again from zero after a lift.
    assert bans.record_failure(IP, "1001", T0 + 11) is Verdict.RETRY


def test_ban_list_memory_is_bounded() -> None:
    policy = BanPolicy(max_sources=100, max_bans=50, max_users_per_source=8)
    bans = BanList(policy)
    for i in range(1000):
        bans.record_failure(f"10.0.{i // 256}.{i % 256}", "1001", T0 + i * 0.001)
    assert len(bans) <= 100
    trusted = BanList(policy, trusted=("10.9.0.0/16",))
    for i in range(1000):
        trusted.record_failure("10.9.0.1", f"u{i}", T0 + i * 0.001)
    source = trusted._sources["10.9.0.1"]
    assert len(source.failures) <= 8 and len(source.refused) <= 8
    for i in range(200):
        for user in ("a", "b", "c", "d", "e"):
            bans.record_failure(f"10.1.0.{i}", user, T0 + 20)
    assert len(bans._bans) <= 50
    assert bans.is_banned("10.1.0.199", T0 + 21)
    # Idle history is forgotten as new addresses come.
    quiet = BanList(BanPolicy())
    for i in range(500):
        quiet.record_failure(f"10.2.{i // 256}.{i % 256}", "x", T0 + i * 10)
    assert len(quiet) <= 62


def test_ban_policy_and_networks_are_checked() -> None:
    for bad in (
        BanPolicy(user_failures=0),
        BanPolicy(scan_users=0),
        BanPolicy(scan_window=0),
        BanPolicy(ban_seconds=-1),
        BanPolicy(max_sources=0),
    ):
        with pytest.raises(ConfigError):
            BanList(bad)
    assert str(parse_network("192.168.1.7/24")) == "192.168.1.0/24"
    assert str(parse_network(" 10.0.0.1 ")) == "10.0.0.1/32"
    assert str(parse_network("fd00::1/8")) == "fd00::/8"
    for text in ("", "192.168.1.0/33", "example.com", "1.2.3"):
        with pytest.raises(ConfigError, match="not an IP address"):
            parse_network(text)
    with pytest.raises(ConfigError):
        BanList(trusted=("nonsense",))


def test_failure_log_budget() -> None:
    budget = FailureLog(burst=3, interval=10)
    assert [budget.allow(T0 + i * 0.1) for i in range(5)] == [(True, 0)] * 3 + [(False, 0)] * 2
    assert budget.allow(T0 + 10) == (True, 2)
    assert budget.allow(T0 + 10.1) == (True, 0)
