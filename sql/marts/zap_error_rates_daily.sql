-- grain: one row per zap per UTC day of start_time (zap_id, day). Runs not started yet have no
-- day and are left out. error_rate = failed / finished, NULL where nothing finished.
with runs as (
    select * from stg_zap_runs
    where started_at is not null
),

daily as (
    select
        zap_id,
        cast(started_at as date) as day,
        count(*) as count_runs,
        sum(case when is_finished then 1 else 0 end) as count_finished,
        sum(case when status_category = 'succeeded' then 1 else 0 end) as count_succeeded,
        sum(case when status_category = 'failed' then 1 else 0 end) as count_failed,
        sum(case when status_category = 'handled' then 1 else 0 end) as count_handled,
        sum(case when status_category = 'halted' then 1 else 0 end) as count_halted,
        sum(case when status_category = 'filtered' then 1 else 0 end) as count_filtered,
        sum(case when status_category = 'in_progress' then 1 else 0 end) as count_in_progress,
        sum(case when status_category = 'blocked' then 1 else 0 end) as count_blocked,
        sum(case when status_category = 'unknown' then 1 else 0 end) as count_unknown
    from runs
    group by zap_id, cast(started_at as date)
),

rates as (
    select
        *,
        cast(count_failed as double precision) / nullif(count_finished, 0) as error_rate,
        cast(count_failed + count_halted as double precision)
            / nullif(count_finished, 0) as failure_rate_incl_halted,
        cast(count_handled as double precision)
            / nullif(count_failed + count_handled, 0) as handled_share
    from daily
)

select * from rates
