"""The heavy-tailed mix: 1% of the accounts make half the runs, 3% of runs fail, some in streaks."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from pipelines.simulator import ManualClock, World, WorldConfig
from pipelines.simulator.accounts import heavy_mix, heavy_tiers, make_mix, tier_of

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
SHARES = {"top": 0.5, "middle": 0.4, "rest": 0.1}


@pytest.mark.parametrize("n", [10_000, 1_000, 250])
def test_the_busiest_1_percent_make_half_the_runs_the_next_9_percent_two_fifths(n):
    """Computed from the configs: no world is built."""
    mix = heavy_mix(n, seed=1)
    per_day = sorted((config.runs_per_day for _, config in mix), reverse=True)
    total = sum(per_day)
    top, middle = max(1, round(n / 100)), round(n * 0.09)
    assert total == pytest.approx(20 * n, rel=0.001), "about 20 runs a day an account"
    assert sum(per_day[:top]) / total == pytest.approx(0.5, abs=0.005)
    assert sum(per_day[top:top + middle]) / total == pytest.approx(0.4, abs=0.005)
    assert sum(per_day[top + middle:]) / total == pytest.approx(0.1, abs=0.005)
    assert [(tier, count) for tier, count, _ in heavy_tiers(n)] == \
        [("top", top), ("middle", middle), ("rest", n - top - middle)]


def test_at_10000_accounts_100_make_100000_runs_a_day_900_make_80000_and_9000_make_20000():
    mix = heavy_mix(10_000, seed=1)
    tiers = tier_of(mix)
    made: dict[str, list[float]] = {"top": [], "middle": [], "rest": []}
    for name, config in mix:
        made[tiers[name]].append(config.runs_per_day)
    assert {tier: len(runs) for tier, runs in made.items()} == {"top": 100, "middle": 900, "rest": 9000}
    assert sum(made["top"]) == pytest.approx(100_000, rel=0.001)
    assert sum(made["middle"]) == pytest.approx(80_000, rel=0.001)
    assert sum(made["rest"]) == pytest.approx(20_000, rel=0.001)
    assert min(made["top"]) > max(made["middle"]) and min(made["middle"]) > max(made["rest"])
    assert max(made["top"]) / min(made["top"]) > 3, "accounts differ within a tier"
    assert mix == heavy_mix(10_000, seed=1) and mix != heavy_mix(10_000, seed=2)
    assert len({config.seed for _, config in mix}) == 10_000
    assert [name for name, _ in mix[:2]] == ["acct-00001", "acct-00002"]
    top_positions = [i for i, (name, _) in enumerate(mix) if tiers[name] == "top"]
    assert top_positions[0] < 1000 and top_positions[-1] > 9000, "the tiers are spread over the names"


def test_the_mix_takes_overrides_and_refuses_what_it_draws():
    mix = heavy_mix(30, seed=4, history_days=2, error_scale=1.0, unlisted_open_rate=0.1)
    assert all(c.history_days == 2 and c.error_scale == 1.0 and c.unlisted_open_rate == 0.1
               and c.streaks_per_week == 1.0 for _, c in mix)
    assert all(c.history_days == 1 and c.error_scale == 0.68 for _, c in heavy_mix(3))
    assert make_mix("heavy", 30, 4, history_days=2, error_scale=1.0, unlisted_open_rate=0.1) == mix
    assert [tier for tier, count, _ in heavy_tiers(3) if count] == ["top", "middle", "rest"]
    assert sum(c.runs_per_day for _, c in heavy_mix(1)) == pytest.approx(20)
    with pytest.raises(ValueError, match="the mix draws runs_per_day"):
        heavy_mix(4, runs_per_day=10)
    with pytest.raises(ValueError, match="unknown mix 'lumpy': pick one of default, heavy"):
        make_mix("lumpy", 4)


def _settled_statuses(world: World, before: datetime) -> list[str]:
    """Each run triggered before `before`, as it settles (manual replays are off in these
    worlds: a run's last change is how it ends)."""
    final = {run_id: change.status for _, _, run_id, change in sorted(world._changes)}
    return [final.get(run.id, run.status) for run in world.runs if run.occurred_at < before]


def test_about_3_percent_of_runs_fail():
    """Half a day of a sample of each tier, weighted by the tier's share of the runs."""
    mix = heavy_mix(10_000, seed=1, history_days=0.5, replay_share=0.0)
    tiers = tier_of(mix)
    by_tier: dict[str, list[WorldConfig]] = {"top": [], "middle": [], "rest": []}
    for name, config in mix:
        by_tier[tiers[name]].append(config)
    rng = random.Random(5)
    sample = {"top": by_tier["top"], "middle": rng.sample(by_tier["middle"], 150),
              "rest": rng.sample(by_tier["rest"], 600)}
    failing = {}
    for tier, configs in sample.items():
        statuses = [s for config in configs
                    for s in _settled_statuses(World(config, ManualClock(START)), START)]
        failing[tier] = statuses.count("error") / len(statuses)
    overall = sum(SHARES[tier] * share for tier, share in failing.items())
    assert 0.025 <= overall <= 0.035, failing
    assert all(0.015 <= share <= 0.05 for share in failing.values()), failing


def test_a_zap_in_a_streak_fails_nearly_every_run():
    config = WorldConfig(seed=2, zaps=4, runs_per_day=3000, history_days=3, replay_share=0.0,
                         error_scale=0.68, streaks_per_week=7)
    world = World(config, ManualClock(START))
    streaks = {zap.id: zap.streaks for zap in world.zaps}
    assert sum(map(len, streaks.values())) > 300, "about one a day, over the year ahead too"
    statuses = dict(zip([run.id for run in world.runs if run.occurred_at < START],
                        _settled_statuses(world, START), strict=True))
    inside, outside = [], []
    for run in world.runs:
        if run.id in statuses:
            during = any(begins <= run.occurred_at < ends for begins, ends in streaks[run.zap_id])
            (inside if during else outside).append(statuses[run.id] in ("error", "error_handled"))
    assert len(inside) > 50
    # Every run in a streak is decided a failure; autoreplay saves some.
    assert sum(inside) / len(inside) > 0.6 and sum(outside) / len(outside) < 0.08
    quiet = World(WorldConfig(**{**config.__dict__, "streaks_per_week": 0}), ManualClock(START))
    assert not any(zap.streaks for zap in quiet.zaps)

