-- grain: one row per zap of an account and step number (account_id, zap_id, step_number). A run
-- reaches a step when the step has a status; it fails at the step when the run failed (category
-- failed) and the step says error. failure_share = the step's share of the zap's failures located at a step.
with steps as (
    select * from stg_zap_run_steps
),

categories as (
    select * from status_categories
),

per_step as (
    select
        steps.account_id,
        steps.zap_id,
        steps.step_number,
        sum(case when steps.status is not null then 1 else 0 end) as count_runs_reaching,
        sum(case when steps.status = 'error' and categories.category = 'failed'
            then 1 else 0 end) as count_runs_failing
    from steps
    left join categories on categories.status = steps.run_status
    group by steps.account_id, steps.zap_id, steps.step_number
),

zap_failures as (
    select account_id, zap_id, sum(count_runs_failing) as count_zap_failures
    from per_step
    group by account_id, zap_id
),

final as (
    select
        per_step.account_id,
        per_step.zap_id,
        per_step.step_number,
        per_step.count_runs_reaching,
        per_step.count_runs_failing,
        cast(per_step.count_runs_failing as double precision)
            / nullif(zap_failures.count_zap_failures, 0) as failure_share
    from per_step
    inner join zap_failures
        on zap_failures.account_id = per_step.account_id and zap_failures.zap_id = per_step.zap_id
)

select * from final
