"""Constants of the zap-runs sync: endpoint, defaults and the status vocabulary."""

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

# Late changes to runs that are already settled come from manual replays and late-arriving
# runs; autoreplay (up to ~10.5 h) and Delay steps (up to a month) show open statuses and are
# re-checked one by one. 24 h re-reads a day of runs per sync: cheap, and it covers the
# replays users make the day a run fails.
DEFAULT_LOOKBACK_HOURS = 24.0

# The contract's final statuses. A run in any other status (open ones such as delayed or held,
# and values the contract does not list: the endpoint is experimental) is re-checked until it
# settles or is purged.
FINAL_STATUSES = frozenset({"success", "error", "error_handled", "halted", "filtered", "skipped"})
# Open runs of one zap whose start times lie this close are re-checked with one request.
RECHECK_CLUSTER_SECONDS = 600.0
# An open run not seen again in this many re-checks is dropped from the list (purged upstream).
RECHECK_MISSES_BEFORE_DROP = 3

# A sync whose predecessor succeeded longer ago than this says so loudly.
DEFAULT_GAP_WARNING_HOURS = 24.0
# Zapier keeps run history 29 to 69 days (some plans 7 to 30): assume the shortest common one.
DEFAULT_RETENTION_DAYS = 29.0
# `status` exits non-zero when the last successful sync is older than this.
DEFAULT_STALE_AFTER_HOURS = 6.0

# dlt destination name -> sqlglot dialect, for the destinations the SQL models and the sync log
# support.
SQL_DIALECTS = {"duckdb": "duckdb", "motherduck": "duckdb", "postgres": "postgres",
                "bigquery": "bigquery", "snowflake": "snowflake", "redshift": "redshift"}
