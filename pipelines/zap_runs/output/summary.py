"""The summary a sync prints: window, runs new and updated, steps, requests, elapsed."""

from __future__ import annotations

from .text import window_text


def format_summary(result) -> str:
    """A few aligned lines for people and log scrapers alike."""
    new = "?" if result.runs_new is None else f"{result.runs_new:,}"
    updated = "?" if result.runs_updated is None else f"{result.runs_updated:,}"
    accounts = getattr(result, "accounts", [])
    ok = sum(1 for a in accounts if a.result in ("success", "deferred"))
    verdict = "OK" if ok == len(accounts) else "SOME ACCOUNTS FAILED" if ok else "ALL ACCOUNTS FAILED"
    lines = [
        f"zap-runs sync into {result.destination} dataset {result.dataset!r}: {verdict}",
        f"  window     {window_text(result.window_from, result.window_to)}",
        f"  runs       {result.runs_fetched:,} fetched: {new} new, {updated} updated",
        f"  steps      {result.steps_loaded:,} rows loaded",
        f"  open runs  {result.open_runs:,} still open, {result.rechecks:,} re-check windows",
        f"  requests   {result.requests:,} ({result.retries:,} retries, "
        f"{result.rate_limited:,} rate limited)",
        f"  spent on   {result.spend.text()}",
        f"  elapsed    {result.elapsed:.1f} s ({result.fetching:.1f} s fetching)",
    ]
    if accounts:
        results = [a.result for a in accounts]
        deferred = results.count("deferred")
        lines.insert(1, f"  accounts   {len(accounts):,}: {results.count('success'):,} synced, "
                        f"{results.count('failed'):,} failed, {results.count('skipped'):,} skipped"
                        + (f", {deferred:,} backfills wait for the next pass" if deferred else ""))
        lines += [f"  {a.result.upper():<10} {a.account}: {a.error}" for a in accounts
                  if a.result in ("failed", "skipped")]
    lines += [f"  WARNING    {warning}" for warning in getattr(result, "warnings", [])]
    return "\n".join(lines)
