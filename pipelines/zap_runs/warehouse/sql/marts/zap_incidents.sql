-- grain: one row per failing episode of a zap of an account (account_id, zap_id, opened_at). The
-- rules live in incident_rules (incident_open_after, incident_resolve_after under
-- [sources.zap_runs]): among a zap's finished runs in start order (run_id breaks ties), an
-- incident opens at the open_after-th failed run in a row and resolves at the resolve_after-th
-- run in a row that did not fail; failed runs in between, also after fewer successes than that,
-- belong to it. Runs still open count once they finish, and a run whose status changes (a
-- replayed failure that succeeds) changes the incidents at the next build.
-- Times are runs' start times, the order the rules count in: opened_at, the open_after-th
-- failure's; first_failed_at, the first failure's in the row; resolved_at, the resolve_after-th
-- run's that did not fail (null while the incident is open); last_failed_at; failed_runs: the
-- failures from the first in the row to the resolution; first_failed_step and first_failed_status:
-- where the first failure failed (the lowest step whose status is error; null where no step
-- says so).
with runs as (
    select * from stg_zap_runs where is_finished and started_at is not null
),

rules as (
    select open_after, resolve_after from incident_rules
),

ordered as (
    select
        runs.account_id,
        runs.zap_id,
        runs.run_id,
        runs.zap_title,
        runs.status,
        runs.started_at,
        case when runs.status_category = 'failed' then 1 else 0 end as is_failed,
        row_number() over (
            partition by runs.account_id, runs.zap_id order by runs.started_at, runs.run_id
        ) as n
    from runs
),

-- Runs in a row of one outcome share an island (its number: the first run's n).
islands as (
    select
        ordered.*,
        n - row_number() over (
            partition by account_id, zap_id, is_failed order by n
        ) as island_key
    from ordered
),

in_island as (
    select
        islands.*,
        row_number() over (partition by account_id, zap_id, is_failed, island_key order by n)
            as k,
        count(*) over (partition by account_id, zap_id, is_failed, island_key) as island_size,
        min(n) over (partition by account_id, zap_id, is_failed, island_key) as island_start
    from islands
),

island_list as (
    select distinct account_id, zap_id, is_failed, island_start, island_size
    from in_island
),

-- An island that opens an incident (enough failures in a row) or resolves one (enough runs in
-- a row that did not fail); epoch: how many resolving islands came before it.
flagged as (
    select
        island_list.*,
        island_list.is_failed = 1 and island_list.island_size >= rules.open_after as opens,
        island_list.is_failed = 0 and island_list.island_size >= rules.resolve_after as resolves
    from island_list
    cross join rules
),

epochs as (
    select
        flagged.*,
        coalesce(sum(case when resolves then 1 else 0 end) over (
            partition by account_id, zap_id order by island_start
            rows between unbounded preceding and 1 preceding
        ), 0) as epoch
    from flagged
),

-- An epoch's incident starts at its first opening island and ends at its resolving island (the
-- last of the epoch), if it has one.
openings as (
    select account_id, zap_id, epoch, min(island_start) as opened_from
    from epochs
    where opens
    group by account_id, zap_id, epoch
),

resolutions as (
    select epochs.account_id, epochs.zap_id, epochs.epoch, epochs.island_start as resolved_from
    from epochs
    inner join openings
        on openings.account_id = epochs.account_id and openings.zap_id = epochs.zap_id
        and openings.epoch = epochs.epoch
    where epochs.resolves and epochs.island_start > openings.opened_from
),

incident_runs as (
    select
        in_island.*,
        openings.epoch,
        openings.opened_from,
        resolutions.resolved_from
    from in_island
    inner join epochs
        on epochs.account_id = in_island.account_id and epochs.zap_id = in_island.zap_id
        and epochs.island_start = in_island.island_start
    inner join openings
        on openings.account_id = in_island.account_id and openings.zap_id = in_island.zap_id
        and openings.epoch = epochs.epoch
    left join resolutions
        on resolutions.account_id = in_island.account_id
        and resolutions.zap_id = in_island.zap_id and resolutions.epoch = epochs.epoch
    where in_island.island_start >= openings.opened_from
),

per_incident as (
    select
        incident_runs.account_id,
        incident_runs.zap_id,
        incident_runs.epoch,
        max(case when incident_runs.island_start = incident_runs.opened_from
                  and incident_runs.k = rules.open_after then incident_runs.started_at end)
            as opened_at,
        max(case when incident_runs.island_start = incident_runs.opened_from
                  and incident_runs.k = 1 then incident_runs.run_id end) as first_failed_run_id,
        min(case when incident_runs.is_failed = 1 then incident_runs.started_at end)
            as first_failed_at,
        max(case when incident_runs.is_failed = 1 then incident_runs.started_at end)
            as last_failed_at,
        sum(incident_runs.is_failed) as failed_runs,
        max(case when incident_runs.island_start = incident_runs.resolved_from
                  and incident_runs.k = rules.resolve_after then incident_runs.started_at end)
            as resolved_at,
        max(incident_runs.zap_title) as any_title
    from incident_runs
    cross join rules
    group by incident_runs.account_id, incident_runs.zap_id, incident_runs.epoch
),

first_steps as (
    select steps.account_id, steps.run_id, min(steps.step_number) as step_number
    from stg_zap_run_steps as steps
    where steps.status = 'error'
    group by steps.account_id, steps.run_id
),

final as (
    select
        per_incident.account_id,
        per_incident.zap_id,
        coalesce(first_run.zap_title, per_incident.any_title) as zap_title,
        per_incident.opened_at,
        per_incident.first_failed_at,
        per_incident.last_failed_at,
        per_incident.resolved_at,
        per_incident.resolved_at is null as is_open,
        per_incident.failed_runs,
        per_incident.first_failed_run_id,
        first_steps.step_number as first_failed_step,
        first_run.status as first_failed_status
    from per_incident
    inner join ordered as first_run
        on first_run.account_id = per_incident.account_id
        and first_run.run_id = per_incident.first_failed_run_id
    left join first_steps
        on first_steps.account_id = per_incident.account_id
        and first_steps.run_id = per_incident.first_failed_run_id
)

select * from final
