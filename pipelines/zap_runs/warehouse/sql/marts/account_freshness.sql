-- grain: one row per account (account_id) with a state row of a completed load: its current row
-- of zap_runs_account_state (the newest whose load is in _dlt_loads with status 0, the row the
-- sync itself reads). When the sync last read the account successfully (last_read_at), when it
-- is next due and why (the scheduler's plan when the row was written, schedule.py; a NULL
-- next_due_at is due at once, or waits for new credentials: due_reason says which), and as of the
-- build time (as_of, as in the other marts, so a sync that stopped shows as hours growing):
-- - hours_since_read: as_of - last_read_at, in hours.
-- - is_overdue: it came due before the newest pass started (last_pass_started_at, from
--   zap_runs_sync_log) and that pass did not read it (a read moves next_due_at past the pass's
--   start): its budget ran out first, or the read failed. An account not due yet is not overdue,
--   read in the newest pass or not; nor is one without a next_due_at.
-- - is_beyond_max_staleness: unread for longer than max_staleness_hours, the configuration the
--   plan kept to (stored in the row: the warehouse knows no other); false where either is unknown
--   (never read, or a row from before schedules).
-- - is_on_schedule: it has a next_due_at and is neither overdue nor beyond max_staleness: a pass
--   that did not read it found it not due (account_health does not call it stale).
-- - runs_per_hour, failures_per_hour: the averages the scheduler weighs the account by (the
--   state's schedule: runs_h, fails_h); NULL before its first complete read.
with states as (
    select * from zap_runs_account_state
),

loads as (
    select load_id from _dlt_loads where status = 0
),

sync_log as (
    select sync_id, started_at
    from zap_runs_sync_log
    where sync_id is not null
),

as_of as (
    select current_timestamp as as_of
),

ranked_states as (
    select
        states.account_id,
        states.pipeline_name,
        states.state,
        states.last_read_at,
        states.next_due_at,
        states.due_reason,
        states.max_staleness_hours,
        row_number() over (
            partition by states.account_id order by states._dlt_load_id desc
        ) as recency
    from states
    inner join loads on loads.load_id = states._dlt_load_id
),

current_states as (
    select * from ranked_states where recency = 1
),

-- A pass is its rows of the log (one sync_id); it started with its first row. The newest pass is
-- the one whose last row started last, as `status` tells it.
passes as (
    select sync_id, min(started_at) as started_at, max(started_at) as last_row_started_at
    from sync_log
    group by sync_id
),

ranked_passes as (
    select started_at, row_number() over (order by last_row_started_at desc nulls last) as recency
    from passes
),

last_pass as (
    -- one row, NULL when the log is empty
    select max(started_at) as last_pass_started_at from ranked_passes where recency = 1
),

measured as (
    select
        current_states.*,
        cast(extract(epoch from as_of.as_of - current_states.last_read_at) as double precision)
            / 3600 as hours_since_read,
        last_pass.last_pass_started_at,
        as_of.as_of
    from current_states
    cross join last_pass
    cross join as_of
),

final as (
    select
        account_id,
        pipeline_name,
        last_read_at,
        next_due_at,
        due_reason,
        hours_since_read,
        max_staleness_hours,
        coalesce(next_due_at < last_pass_started_at, false) as is_overdue,
        coalesce(hours_since_read > max_staleness_hours, false) as is_beyond_max_staleness,
        next_due_at is not null
            and not coalesce(next_due_at < last_pass_started_at, false)
            and not coalesce(hours_since_read > max_staleness_hours, false) as is_on_schedule,
        cast(cast(state as json) -> 'schedule' ->> 'runs_h' as double precision) as runs_per_hour,
        cast(cast(state as json) -> 'schedule' ->> 'fails_h' as double precision)
            as failures_per_hour,
        last_pass_started_at,
        as_of
    from measured
)

select * from final
