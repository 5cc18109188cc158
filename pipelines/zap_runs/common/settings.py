"""Constants of the zap-runs sync (endpoint, defaults, the status vocabulary); its SyncConfig is in
sync_config.py."""

from __future__ import annotations

DEFAULT_BASE_URL = "https://api.zapier.com"
ENDPOINT = "/v2/zap-runs"
PIPELINE_NAME = "zap_runs"
DEFAULT_DATASET = "zapier"

# Public clients ask for 100; the server may cap it silently, so paging never trusts it.
DEFAULT_PAGE_LIMIT = 100
# Zapier allows 60 requests/minute per IP (150 per partner); pace under it, never meet a 429.
DEFAULT_REQUESTS_PER_MINUTE = 60.0
# After a 429 Zapier imposes a 60 s cooldown; without Retry-After that is what we wait.
DEFAULT_RETRY_AFTER = 60.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_BACKOFF_BASE = 1.0
DEFAULT_BACKOFF_MAX = 60.0

# What the lookback is still for: runs Zapier records a little after they were triggered (the
# API lists runs by trigger time, so such a run appears in a window the last sync already read).
# Open runs are found through the `statuses=` listing and replays of failed runs through the
# error listing, so the lookback no longer carries them. docs/operations.md, "Why the lookback is 15 minutes".
DEFAULT_LOOKBACK_HOURS = 0.25
# Errored runs are watched for replays (autoreplay ~10.5 h, people later) this long after they
# failed, through a `statuses=error` listing.
DEFAULT_REPLAY_HORIZON_HOURS = 72.0

# The contract's final statuses. A run in any other status (open ones such as delayed or held,
# and values the contract does not list: the endpoint is experimental) is re-checked until it
# settles or is purged.
FINAL_STATUSES = frozenset({"success", "error", "error_handled", "halted", "filtered", "skipped"})
# The contract's open statuses: `statuses=` lists the runs in them.
OPEN_STATUSES = frozenset({"delayed", "scheduled", "pending", "throttled", "held"})
# Every status `statuses=` accepts; a run in any other one can only be found by its window.
LISTED_STATUSES = FINAL_STATUSES | OPEN_STATUSES
# Open runs of one zap whose start times lie this close are re-checked with one request.
RECHECK_CLUSTER_SECONDS = 600.0
# An open run not seen again in this many re-checks is dropped from the list (purged upstream).
RECHECK_MISSES_BEFORE_DROP = 3

# With many accounts, a window that takes more pages than this is read in parts, one a pass
# (10 minutes at 60 requests/minute): a new account's backfill never holds up the others long.
DEFAULT_BACKFILL_PAGES_PER_PASS = 600

# With many accounts, no account goes unread longer than this (accounts/schedule.py), and a scheduled
# pass reads for at most this many minutes of requests (a little under a */15 cron's interval,
# with the models after it).
DEFAULT_MAX_STALENESS_HOURS = 6.0
DEFAULT_READ_BUDGET_MINUTES = 10.0
# --loop: a load at least every minute; the models every 15 minutes (a rebuild reads every run).
DEFAULT_LOAD_EVERY_SECONDS = 60.0
DEFAULT_MODELS_EVERY_MINUTES = 15.0
# zap_incidents: three failures in a row open an incident (one or two are often a bad record or
# a passing outage), two runs in a row that did not fail resolve it.
DEFAULT_INCIDENT_OPEN_AFTER = 3
DEFAULT_INCIDENT_RESOLVE_AFTER = 2

# A sync whose predecessor succeeded longer ago than this says so loudly.
DEFAULT_GAP_WARNING_HOURS = 24.0
# Zapier keeps run history 29 to 69 days (some plans 7 to 30): assume the shortest common one.
DEFAULT_RETENTION_DAYS = 29.0
# `status` exits non-zero when the last successful sync is older than this.
DEFAULT_STALE_AFTER_HOURS = 6.0
# How long a sync waits for a DuckDB file another process holds, and for the previous sync.
DEFAULT_LOCK_WAIT_SECONDS = 120.0
DEFAULT_OVERLAP_WAIT_SECONDS = 300.0
# DuckDB's cap while loading: with it, a 200,000-run backfill stays under 400 MB in all (its
# merge, which skips dlt's dedup there, passes at 64MB, also into a full table; measured
# 358-367 MB peak; a partner's first pass of 89 accounts, 55,210 runs, 329 MB).
DEFAULT_DUCKDB_MEMORY_LIMIT = "64MB"
# The format zap-runs makes new DuckDB files in. DuckDB 2.0 writes its own format by default,
# which no DuckDB 1.x opens; BI tools embed 1.x (Evidence's DuckDB driver resolves
# @duckdb/node-api 1.4.2, Metabase's driver, Rill and duckdb-engine setups run 1.x), and DuckDB
# 1.4 reads formats up to v1.4.0.
DEFAULT_STORAGE_VERSION = "v1.4.0"

# dlt destination name -> sqlglot dialect, for the destinations the SQL models and the sync log
# support.
SQL_DIALECTS = {"duckdb": "duckdb", "motherduck": "duckdb", "postgres": "postgres",
                "bigquery": "bigquery", "snowflake": "snowflake", "redshift": "redshift"}

