-- grain: one row per step of a run (run_id, step_number); step_number counts from 1. The run's
-- zap_id and status ride along, so marts about steps need no second join.
with steps as (
    select * from zap_runs__steps
),

runs as (
    select id, zap_id, status, _dlt_id from zap_runs
),

renamed as (
    select
        runs.id as run_id,
        steps._dlt_list_idx + 1 as step_number,
        steps.status,
        steps.start_time as started_at,
        runs.zap_id,
        runs.status as run_status
    from steps
    inner join runs on runs._dlt_id = steps._dlt_parent_id
)

select * from renamed
