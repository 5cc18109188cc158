-- grain: one row per zap of an account per UTC hour of start_time (account_id, zap_id, hour), for
-- the last 14 days.
-- error_rate = failed / finished, NULL where nothing finished.
with hourly as (
    select * from int_zap_run_counts_hourly
    where hour >= date_trunc('hour', current_timestamp - interval '14 days')
),

rates as (
    select
        *,
        cast(count_failed as double precision) / nullif(count_finished, 0) as error_rate
    from hourly
)

select * from rates
