-- grain: one row per zap of an account per UTC day of start_time (account_id, zap_id, day). Runs
-- not started yet have no day and are left out. error_rate = failed / finished, NULL where nothing finished.
with hourly as (
    select * from int_zap_run_counts_hourly
),

daily as (
    select
        account_id,
        zap_id,
        cast(hour as date) as day,
        sum(count_runs) as count_runs,
        sum(count_finished) as count_finished,
        sum(count_succeeded) as count_succeeded,
        sum(count_failed) as count_failed,
        sum(count_handled) as count_handled,
        sum(count_halted) as count_halted,
        sum(count_filtered) as count_filtered,
        sum(count_in_progress) as count_in_progress,
        sum(count_blocked) as count_blocked,
        sum(count_unknown) as count_unknown
    from hourly
    group by account_id, zap_id, cast(hour as date)
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
