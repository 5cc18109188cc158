-- grain: one row per zap title and step number (zap_title, step_number) with a failure in the
-- last 7 days, across all accounts: where the partner's users' zaps break, and how many users
-- each break touches. As of the build time (as_of).
-- Why title and step: zap ids are only unique within an account, so they cannot say that two
-- users run "the same" zap; the title can, when users build from the partner's templates or
-- keep Zapier's default titles, and a step number within such a zap is the same step. The raw
-- steps carry no app or action (rows.py: status and start only), so a step app is not
-- available. A zap counts under its current title (zap_health's, from its latest run), so a
-- renamed zap does not split; zaps without a title are left out: nothing matches them across
-- accounts. A run fails at a step as in zap_step_failures (the run failed, the step says
-- error); windows are by the run's start. count_accounts_reaching_7d is how many accounts ran
-- the step at all, the base for count_accounts_affected_7d.
with steps as (
    select * from stg_zap_run_steps
),

categories as (
    select * from status_categories
),

zaps as (
    select account_id, zap_id, zap_title from zap_health
    where zap_title is not null
),

as_of as (
    select current_timestamp as as_of
),

recent as (
    select
        zaps.zap_title,
        steps.step_number,
        steps.account_id,
        steps.zap_id,
        steps.run_started_at,
        steps.run_started_at >= as_of.as_of - interval '1 day' as is_last_24h,
        steps.status is not null as is_reached,
        coalesce(steps.status = 'error' and categories.category = 'failed', false) as is_failing
    from steps
    inner join zaps on zaps.account_id = steps.account_id and zaps.zap_id = steps.zap_id
    left join categories on categories.status = steps.run_status
    cross join as_of
    where steps.run_started_at >= as_of.as_of - interval '7 days'
),

per_step as (
    select
        zap_title,
        step_number,
        count(distinct case when is_failing and is_last_24h then account_id end)
            as count_accounts_affected_24h,
        count(distinct case when is_failing then account_id end) as count_accounts_affected_7d,
        count(distinct case when is_reached then account_id end) as count_accounts_reaching_7d,
        count(distinct case when is_failing then account_id || '/' || cast(zap_id as varchar) end)
            as count_zaps_affected_7d,
        sum(case when is_failing and is_last_24h then 1 else 0 end) as count_runs_failing_24h,
        sum(case when is_failing then 1 else 0 end) as count_runs_failing_7d,
        sum(case when is_reached then 1 else 0 end) as count_runs_reaching_7d,
        max(case when is_failing then run_started_at end) as last_failed_at
    from recent
    group by zap_title, step_number
),

final as (
    select
        per_step.zap_title,
        per_step.step_number,
        per_step.count_accounts_affected_24h,
        per_step.count_accounts_affected_7d,
        per_step.count_accounts_reaching_7d,
        per_step.count_zaps_affected_7d,
        per_step.count_runs_failing_24h,
        per_step.count_runs_failing_7d,
        per_step.count_runs_reaching_7d,
        cast(per_step.count_runs_failing_7d as double precision)
            / nullif(per_step.count_runs_reaching_7d, 0) as failure_rate_7d,
        per_step.last_failed_at,
        as_of.as_of
    from per_step
    cross join as_of
    where per_step.count_runs_failing_7d > 0
)

select * from final
