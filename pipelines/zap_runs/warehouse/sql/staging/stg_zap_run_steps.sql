-- grain: one row per step of a run of an account (account_id, run_id, step_number); step_number
-- counts from 1, as Zapier numbers steps. The run's status and start ride along, so marts about
-- steps need no second join. Run ids repeat across accounts: the join matches both keys.
with steps as (
    select * from zap_runs__steps
),

runs as (
    select account_id, id, status, start_time from zap_runs
),

renamed as (
    select
        steps.account_id,
        steps.run_id,
        steps.step_number,
        steps.status,
        steps.start_time as started_at,
        steps.zap_id,
        runs.status as run_status,
        runs.start_time as run_started_at
    from steps
    inner join runs
        on runs.account_id = steps.account_id and runs.id = steps.run_id
)

select * from renamed
