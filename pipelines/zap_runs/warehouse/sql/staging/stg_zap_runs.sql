-- grain: one row per zap run of an account (account_id, run_id): run ids, like zap ids, are
-- unique only within an account. Typed and renamed from the raw zap_runs table, with the status
-- category from the status_categories lookup (statuses it does not list: unknown).
with source as (
    select * from zap_runs
),

categories as (
    select * from status_categories
),

renamed as (
    select
        source.account_id,
        source.id as run_id,
        source.zap_id,
        source.zap_title,
        source.status,
        coalesce(categories.category, 'unknown') as status_category,
        coalesce(categories.is_finished, false) as is_finished,
        source.start_time as started_at,
        source.end_time as ended_at,
        source.data_in,
        source.data_out,
        source.fetched_at
    from source
    left join categories on categories.status = source.status
)

select * from renamed
