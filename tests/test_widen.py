"""widen.py: runs counted by hour, and the lookback a quiet account widens to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipelines.zap_runs.reading.widen import WIDEN_HOURS, count_hours, expected_runs, widened

NOW = datetime(2026, 11, 29, 12, 30, tzinfo=UTC)


def hourly(hours: int, per_hour: int, now: datetime = NOW) -> list:
    """Counts of a window over the last `hours` hours with `per_hour` runs in each."""
    starts = [now - timedelta(hours=h, minutes=m) for h in range(hours)
              for m in range(0, 60, 60 // per_hour)] if per_hour else []
    return count_hours(None, starts, (now - timedelta(hours=hours), now), now)


def test_whole_hours_are_counted_and_old_ones_let_go():
    saved = hourly(300, 2)
    assert len(saved[1]) <= WIDEN_HOURS + 1
    assert expected_runs(saved, NOW - timedelta(hours=10), NOW, NOW) == 22  # 11 hours of 2


def test_a_span_with_an_hour_never_counted_is_not_guessed():
    saved = hourly(5, 1)
    assert expected_runs(saved, NOW - timedelta(hours=20), NOW, NOW) is None


def test_hours_since_the_cursor_follow_the_last_days_pace():
    saved = hourly(48, 1)
    cursor = NOW - timedelta(hours=2)
    assert expected_runs(saved, cursor, cursor, NOW) == 1 + 2  # its own hour, then 2 h at 1/h


def test_a_quiet_account_widens_over_the_kinds_that_fit_the_oldest_first():
    saved = hourly(100, 1)
    cursor, short = NOW, timedelta(minutes=15)
    reach = {"error": NOW - timedelta(hours=30), "open": NOW - timedelta(hours=90)}
    # 90 hours hold 90 runs: more than 0.6 of a page of 100; 30 hours fit.
    assert widened(saved, reach, cursor, short, NOW, 100) == timedelta(hours=30, seconds=1)
    assert widened(saved, reach, cursor, short, NOW, 200) == timedelta(hours=90, seconds=1)


def test_a_busy_account_or_nothing_watched_keeps_its_lookback():
    short = timedelta(minutes=15)
    busy = hourly(100, 60)
    assert widened(busy, {"open": NOW - timedelta(hours=2)}, NOW, short, NOW, 100) == short
    assert widened(hourly(100, 1), {}, NOW, short, NOW, 100) == short
    # Watched runs inside the short window need nothing more.
    assert widened(hourly(100, 1), {"open": NOW - timedelta(minutes=5)}, NOW, short, NOW,
                   100) == short
