-- grain: one row per zap of an account (account_id, zap_id). Health as of the build time (as_of):
-- last run and last success, the current streak of consecutive failed runs (finished runs since
-- the last finished run that did not fail), error rates over the last 24 h, 7 d and 30 d, the
-- change against the period before, and is_spiking when the last 24 h look much worse than the
-- week before.
with runs as (
    select * from stg_zap_runs
),

as_of as (
    select current_timestamp as as_of
),

per_zap as (
    select
        runs.account_id,
        runs.zap_id,
        max(runs.zap_title) as any_title,
        max(started_at) as last_run_at,
        max(case when status_category = 'succeeded' then started_at end) as last_success_at,
        max(case when is_finished and status_category <> 'failed' then started_at end)
            as last_not_failed_at,
        sum(case when is_finished and started_at >= as_of - interval '1 day'
            then 1 else 0 end) as count_finished_24h,
        sum(case when status_category = 'failed' and started_at >= as_of - interval '1 day'
            then 1 else 0 end) as count_failed_24h,
        sum(case when is_finished and started_at >= as_of - interval '2 days'
                  and started_at < as_of - interval '1 day' then 1 else 0 end) as count_finished_prev_24h,
        sum(case when status_category = 'failed' and started_at >= as_of - interval '2 days'
                  and started_at < as_of - interval '1 day' then 1 else 0 end) as count_failed_prev_24h,
        sum(case when is_finished and started_at >= as_of - interval '7 days'
            then 1 else 0 end) as count_finished_7d,
        sum(case when status_category = 'failed' and started_at >= as_of - interval '7 days'
            then 1 else 0 end) as count_failed_7d,
        sum(case when is_finished and started_at >= as_of - interval '14 days'
                  and started_at < as_of - interval '7 days' then 1 else 0 end) as count_finished_prev_7d,
        sum(case when status_category = 'failed' and started_at >= as_of - interval '14 days'
                  and started_at < as_of - interval '7 days' then 1 else 0 end) as count_failed_prev_7d,
        sum(case when is_finished and started_at >= as_of - interval '30 days'
            then 1 else 0 end) as count_finished_30d,
        sum(case when status_category = 'failed' and started_at >= as_of - interval '30 days'
            then 1 else 0 end) as count_failed_30d
    from runs
    cross join as_of
    group by runs.account_id, runs.zap_id
),

titles as (
    select runs.account_id, runs.zap_id, max(runs.zap_title) as zap_title
    from runs
    inner join per_zap
        on per_zap.account_id = runs.account_id and per_zap.zap_id = runs.zap_id
        and runs.started_at = per_zap.last_run_at
    group by runs.account_id, runs.zap_id
),

streaks as (
    select
        runs.account_id,
        runs.zap_id,
        sum(case when runs.status_category = 'failed'
                  and (per_zap.last_not_failed_at is null
                       or runs.started_at > per_zap.last_not_failed_at)
            then 1 else 0 end) as current_failure_streak
    from runs
    inner join per_zap on per_zap.account_id = runs.account_id and per_zap.zap_id = runs.zap_id
    where runs.started_at is not null
    group by runs.account_id, runs.zap_id
),

rates as (
    select
        account_id,
        zap_id,
        count_failed_24h,
        cast(count_failed_24h as double precision) / nullif(count_finished_24h, 0) as error_rate_24h,
        cast(count_failed_prev_24h as double precision)
            / nullif(count_finished_prev_24h, 0) as error_rate_prev_24h,
        cast(count_failed_7d as double precision) / nullif(count_finished_7d, 0) as error_rate_7d,
        cast(count_failed_prev_7d as double precision)
            / nullif(count_finished_prev_7d, 0) as error_rate_prev_7d,
        cast(count_failed_30d as double precision) / nullif(count_finished_30d, 0) as error_rate_30d
    from per_zap
),

final as (
    select
        per_zap.account_id,
        per_zap.zap_id,
        coalesce(titles.zap_title, per_zap.any_title) as zap_title,
        per_zap.last_run_at,
        per_zap.last_success_at,
        coalesce(streaks.current_failure_streak, 0) as current_failure_streak,
        rates.count_failed_24h,
        rates.error_rate_24h,
        rates.error_rate_7d,
        rates.error_rate_30d,
        rates.error_rate_24h - rates.error_rate_prev_24h as error_rate_24h_change,
        rates.error_rate_7d - rates.error_rate_prev_7d as error_rate_7d_change,
        coalesce(
            rates.count_failed_24h >= 3
            and rates.error_rate_24h >= 0.2
            and rates.error_rate_24h >= 2 * coalesce(rates.error_rate_7d, 0),
            false
        ) as is_spiking,
        as_of.as_of
    from per_zap
    inner join rates on rates.account_id = per_zap.account_id and rates.zap_id = per_zap.zap_id
    left join titles on titles.account_id = per_zap.account_id and titles.zap_id = per_zap.zap_id
    left join streaks
        on streaks.account_id = per_zap.account_id and streaks.zap_id = per_zap.zap_id
    cross join as_of
)

select * from final
