-- grain: one row per account (account_id): every account with runs or with a sync in the log.
-- As of the build time (as_of): runs, failures and error rates (failed / finished) over the last
-- 24 h and 7 d, the account's zaps, those failing now (current_failure_streak > 0 in zap_health)
-- and spiking, the last run's start, and from zap_runs_sync_log the last sync (result, error)
-- and the last successful one (its end). needs_attention says whether someone should look, and
-- attention_reason why: the last sync failed or was skipped (a revoked token, say), the last
-- success is older than 6 h (stale_after_hours' default; also when the account's log holds no
-- success) and it is not on schedule (account_freshness: a pass reads the due accounts only),
-- the error rate is high (is_error_rate_high), zaps spike or fail. An account with no row in the
-- log is not judged on its syncs.
-- is_error_rate_high: in the last 24 h at least 20 runs finished and at least 5 failed, and the
-- error rate is at least 10 %, or it is at least 3 times the rate of the 6 days before (the 7 days
-- without the last 24 h; at least 20 finished runs there) and at least 5 points above it. The
-- thresholds are the constants of the `thresholds` CTE; rates are compared as exact fractions of
-- counts. The reason shows both rates, rounded to a whole percent (halves up).
with runs as (
    select * from stg_zap_runs
),

zaps as (
    select * from zap_health
),

freshness as (
    select account_id, is_on_schedule from account_freshness
),

sync_log as (
    select account_id, started_at, ended_at, result, error
    from zap_runs_sync_log
    where account_id is not null
),

as_of as (
    select current_timestamp as as_of
),

thresholds as (
    select
        20 as min_finished_runs,  -- finished runs in a window for its rate to count
        5 as min_failed_runs,  -- failed runs in the last 24 h: a few failures are noise
        10 as high_rate_percent,  -- a 24-hour rate this high is high whatever the account's past
        3 as times_baseline,  -- or this many times the rate of the 6 days before
        5 as margin_points  -- and this many percentage points above it
),

run_counts as (
    select
        runs.account_id,
        max(runs.started_at) as last_run_at,
        sum(case when runs.started_at >= as_of - interval '1 day' then 1 else 0 end) as count_runs_24h,
        sum(case when runs.is_finished and runs.started_at >= as_of - interval '1 day'
            then 1 else 0 end) as count_finished_24h,
        sum(case when runs.status_category = 'failed' and runs.started_at >= as_of - interval '1 day'
            then 1 else 0 end) as count_failed_24h,
        sum(case when runs.started_at >= as_of - interval '7 days' then 1 else 0 end) as count_runs_7d,
        sum(case when runs.is_finished and runs.started_at >= as_of - interval '7 days'
            then 1 else 0 end) as count_finished_7d,
        sum(case when runs.status_category = 'failed' and runs.started_at >= as_of - interval '7 days'
            then 1 else 0 end) as count_failed_7d,
        sum(case when runs.is_finished and runs.started_at >= as_of - interval '7 days'
                  and runs.started_at < as_of - interval '1 day' then 1 else 0 end)
            as count_finished_before_24h,
        sum(case when runs.status_category = 'failed' and runs.started_at >= as_of - interval '7 days'
                  and runs.started_at < as_of - interval '1 day' then 1 else 0 end)
            as count_failed_before_24h
    from runs
    cross join as_of
    group by runs.account_id
),

zap_counts as (
    select
        account_id,
        count(*) as count_zaps,
        sum(case when current_failure_streak > 0 then 1 else 0 end) as count_zaps_failing,
        sum(case when is_spiking then 1 else 0 end) as count_zaps_spiking
    from zaps
    group by account_id
),

ranked_syncs as (
    select
        account_id,
        started_at,
        result,
        error,
        row_number() over (
            partition by account_id order by started_at desc nulls last, ended_at desc nulls last
        ) as recency
    from sync_log
),

last_syncs as (
    select account_id, started_at as last_sync_at, result as last_sync_result,
           error as last_sync_error
    from ranked_syncs
    where recency = 1
),

successes as (
    select account_id, max(ended_at) as last_success_at
    from sync_log
    where result = 'success'
    group by account_id
),

accounts as (
    select account_id from run_counts
    union
    select account_id from last_syncs
),

joined as (
    select
        accounts.account_id,
        coalesce(zap_counts.count_zaps, 0) as count_zaps,
        coalesce(run_counts.count_runs_24h, 0) as count_runs_24h,
        coalesce(run_counts.count_failed_24h, 0) as count_failed_24h,
        cast(run_counts.count_failed_24h as double precision)
            / nullif(run_counts.count_finished_24h, 0) as error_rate_24h,
        coalesce(run_counts.count_runs_7d, 0) as count_runs_7d,
        coalesce(run_counts.count_failed_7d, 0) as count_failed_7d,
        cast(run_counts.count_failed_7d as double precision)
            / nullif(run_counts.count_finished_7d, 0) as error_rate_7d,
        coalesce(zap_counts.count_zaps_failing, 0) as count_zaps_failing,
        coalesce(zap_counts.count_zaps_spiking, 0) as count_zaps_spiking,
        coalesce(run_counts.count_finished_24h, 0) as count_finished_24h,
        coalesce(run_counts.count_finished_before_24h, 0) as count_finished_before_24h,
        coalesce(run_counts.count_failed_before_24h, 0) as count_failed_before_24h,
        run_counts.last_run_at,
        last_syncs.last_sync_at,
        last_syncs.last_sync_result,
        last_syncs.last_sync_error,
        successes.last_success_at,
        coalesce(last_syncs.last_sync_result in ('failed', 'skipped'), false) as is_sync_failing,
        last_syncs.account_id is not null
            and (successes.last_success_at is null
                 or successes.last_success_at < as_of.as_of - interval '6 hours')
            and not coalesce(freshness.is_on_schedule, false) as is_stale,
        as_of.as_of
    from accounts
    left join run_counts on run_counts.account_id = accounts.account_id
    left join zap_counts on zap_counts.account_id = accounts.account_id
    left join last_syncs on last_syncs.account_id = accounts.account_id
    left join successes on successes.account_id = accounts.account_id
    left join freshness on freshness.account_id = accounts.account_id
    cross join as_of
),

-- Rates are compared as integer cross-products (f / n >= p % is 100 * f >= p * n): exact on
-- every engine, where in floating point 0.06 - 0.01 falls short of 0.05.
error_rates as (
    select
        joined.*,
        coalesce(
            count_finished_24h >= min_finished_runs
            and count_failed_24h >= min_failed_runs
            and (
                100 * count_failed_24h >= high_rate_percent * count_finished_24h
                or (
                    count_finished_before_24h >= min_finished_runs
                    and count_failed_24h * count_finished_before_24h
                        >= times_baseline * count_failed_before_24h * count_finished_24h
                    and 100 * (count_failed_24h * count_finished_before_24h
                               - count_failed_before_24h * count_finished_24h)
                        >= margin_points * count_finished_24h * count_finished_before_24h
                )
            ),
            false
        ) as is_error_rate_high,
        cast(floor(100 * cast(count_failed_24h as double precision)
                   / nullif(count_finished_24h, 0) + 0.5) as integer) as percent_failed_24h,
        cast(floor(100 * cast(count_failed_before_24h as double precision)
                   / nullif(count_finished_before_24h, 0) + 0.5) as integer) as percent_failed_before_24h
    from joined
    cross join thresholds
),

final as (
    select
        account_id,
        count_zaps,
        count_runs_24h,
        count_failed_24h,
        error_rate_24h,
        count_runs_7d,
        count_failed_7d,
        error_rate_7d,
        count_zaps_failing,
        count_zaps_spiking,
        last_run_at,
        last_sync_at,
        last_sync_result,
        last_sync_error,
        last_success_at,
        is_sync_failing,
        is_stale,
        is_error_rate_high,
        is_sync_failing or is_stale or is_error_rate_high or count_zaps_failing > 0
            or count_zaps_spiking > 0 as needs_attention,
        nullif(concat_ws('; ',
            case when is_sync_failing then 'last sync ' || last_sync_result
                || coalesce(': ' || substr(last_sync_error, 1, 160), '') end,
            case when is_stale and last_success_at is null then 'no successful sync yet'
                 when is_stale then 'no successful sync in the last 6 h' end,
            case when is_error_rate_high
                then 'error rate ' || cast(percent_failed_24h as varchar) || '% in 24 h'
                || coalesce(' (' || cast(percent_failed_before_24h as varchar)
                            || '% in the 6 days before)', '') end,
            case when count_zaps_spiking > 0
                then 'zaps spiking: ' || cast(count_zaps_spiking as varchar) end,
            case when count_zaps_failing > 0
                then 'zaps failing: ' || cast(count_zaps_failing as varchar) end
        ), '') as attention_reason,
        as_of
    from error_rates
)

select * from final
