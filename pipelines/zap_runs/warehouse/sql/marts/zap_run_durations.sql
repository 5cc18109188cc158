-- grain: one row per zap of an account per UTC day of start_time (account_id, zap_id, day):
-- durations in seconds of the finished runs (succeeded, failed, handled, halted) that have both a start and an end.
with runs as (
    select
        account_id,
        zap_id,
        cast(started_at as date) as day,
        extract(epoch from ended_at - started_at) as duration_seconds
    from stg_zap_runs
    where is_finished and started_at is not null and ended_at is not null
),

final as (
    select
        account_id,
        zap_id,
        day,
        count(*) as count_runs,
        percentile_cont(0.5) within group (order by duration_seconds) as p50_seconds,
        percentile_cont(0.95) within group (order by duration_seconds) as p95_seconds,
        max(duration_seconds) as max_seconds
    from runs
    group by account_id, zap_id, day
)

select * from final
