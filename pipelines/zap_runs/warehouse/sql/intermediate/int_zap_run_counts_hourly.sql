-- grain: one row per zap of an account per UTC hour of start_time (account_id, zap_id, hour),
-- over all history: run counts per status category. The daily and hourly error-rate marts both
-- roll up from here. Zap ids are unique only within an account, so every grain leads with it.
with runs as (
    select * from stg_zap_runs
    where started_at is not null
),

hourly as (
    select
        account_id,
        zap_id,
        date_trunc('hour', started_at) as hour,
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
    group by account_id, zap_id, date_trunc('hour', started_at)
)

select * from hourly
