"""The summary a sync prints: window, runs new and updated, steps, requests, rate limit, elapsed."""

from __future__ import annotations

from ..accounts.outcomes import split
from ..common.settings import DEFAULT_REQUESTS_PER_MINUTE
from .text import minutes, needed_text, window_text

WIDTH = 10  # the labels' column


def verdict(accounts: list) -> str:
    """OK, or what went wrong with the accounts of a pass (bad entries of the configuration
    are no accounts: they are named apart)."""
    real, failed, bad = split(accounts)
    if real and len(failed) == len(real):
        return "ALL ACCOUNTS FAILED"
    if failed:
        return "SOME ACCOUNTS FAILED"
    if not real and bad:
        return "NO ACCOUNT TO SYNC: EVERY ENTRY IS BAD"
    if bad:
        return f"OK, BUT {bad_entries(len(bad)).upper()} IN THE ACCOUNTS CONFIGURATION"
    return "OK"


def bad_entries(count: int) -> str:
    return f"{count:,} bad {'entry' if count == 1 else 'entries'}"


def rate_text(requests: int, rate: float | None, share: int = 1) -> str:
    """How much of the rate limit the requests took: minutes at the pace the sync kept
    (`rate`: requests_per_minute, with a shard's 1/share of it), or, unpaced, at Zapier's."""
    if not rate:
        return (f"not paced (requests_per_minute is 0): {minutes(requests, DEFAULT_REQUESTS_PER_MINUTE)}"
                f" at Zapier's {DEFAULT_REQUESTS_PER_MINUTE:g} a minute")
    shared = f" (this shard's 1/{share} of requests_per_minute)" if share > 1 else ""
    return f"{minutes(requests, rate)} used, at {rate:g} requests a minute{shared}"


def format_summary(result, rate: float | None = DEFAULT_REQUESTS_PER_MINUTE, share: int = 1,
                   verbose: bool = False) -> str:
    """A few aligned lines for people and log scrapers alike; `verbose` adds the requests by
    purpose and the budget (reading/spend.py). `rate`: the requests a minute the sync was paced at."""
    runs = f"{result.runs_fetched:,} fetched"
    if result.runs_new is not None and result.runs_updated is not None:
        runs += f": {result.runs_new:,} new, {result.runs_updated:,} updated"
    accounts = getattr(result, "accounts", [])
    rechecks = f", {result.rechecks:,} re-check windows" if verbose else ""
    lines = [
        f"zap-runs sync into {result.destination} dataset {result.dataset!r}: {verdict(accounts)}",
        f"  window     {window_text(result.window_from, result.window_to)}",
        f"  runs       {runs}",
        f"  steps      {result.steps_loaded:,} rows loaded",
        f"  open runs  {result.open_runs:,} still open{rechecks}",
        f"  requests   {result.requests:,} ({result.retries:,} retries, "
        f"{result.rate_limited:,} rate limited)",
        f"  rate limit {rate_text(result.requests, rate, share)}",
        f"  needed     {needed_text(result.spend.budget.total, result.spend.checks)}",
    ]
    if verbose:
        lines += [f"  {label:<{WIDTH}} {text}" for label, text in result.spend.detail()]
    lines.append(f"  elapsed    {result.elapsed:.1f} s ({result.fetching:.1f} s fetching)")
    if accounts:
        lines[1:1] = account_lines(accounts, getattr(result, "due", None),
                                   getattr(result, "configured", None))
    if getattr(result, "location", None):  # the file this sync wrote, as written
        lines.insert(1, f"  file       {result.location}")
    lines += [f"  WARNING    {warning}" for warning in getattr(result, "warnings", [])]
    return "\n".join(lines)


def account_lines(accounts: list, due: int | None = None,
                  configured: int | None = None) -> list[str]:
    """How many accounts synced, failed, were skipped or wait (of how many were due, in a
    scheduled pass); each one that failed or was skipped, and each bad entry of the
    configuration."""
    results = [a.result for a in accounts]
    bad = results.count("invalid")
    deferred = results.count("deferred")
    read = f"{len(accounts) - bad:,}"
    if due is not None and configured is not None and len(accounts) - bad < configured:
        read = (f"{read} read of {configured:,} ({due:,} due, the others not yet: "
                "docs/partners.md, Freshness)")
    lines = [f"  accounts   {read}: {results.count('success'):,} synced, "
             f"{results.count('failed'):,} failed, {results.count('skipped'):,} skipped"
             + (f", {deferred:,} backfills wait for the next pass" if deferred else "")
             + (f"; {bad_entries(bad)} in the configuration, not read" if bad else "")]
    lines += [f"  {a.result.upper():<{WIDTH}} {a.account}: {a.error}" for a in accounts
              if a.result in ("failed", "skipped")]
    lines += [f"  BAD ENTRY  {a.error}" for a in accounts if a.result == "invalid"]
    return lines
