-- grain: one row per step of a run (run_id, step_number); step_number counts from 1, as Zapier
-- numbers steps. The run's status rides along, so marts about steps need no second join.
with steps as (
    select * from zap_runs__steps
),

runs as (
    select id, status from zap_runs
),

renamed as (
    select
        steps.run_id,
        steps.step_number,
        steps.status,
        steps.start_time as started_at,
        steps.zap_id,
        runs.status as run_status
    from steps
    inner join runs on runs.id = steps.run_id
)

select * from renamed
