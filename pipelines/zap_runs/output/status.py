"""`status` for people and monitors: the last pass, the last success, the newest run, who needs
attention, and how fresh each account is."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .freshness import Freshness, counts_text, due_text, least_fresh_first, read_text
from .lastpass import PassFacts
from .summary import bad_entries
from .text import ago, needed_text, took, window_text

SHOWN = 20  # accounts and bad entries listed by name; the rest are counted
EXIT_STALE, EXIT_ATTENTION = 1, 4


def is_stale(success: dict | None, max_age_hours: float, now: datetime) -> bool:
    """Whether the last successful sync (a sync log row) ended longer ago than `max_age_hours`."""
    return success is None or (now - success["ended_at"]).total_seconds() > max_age_hours * 3600


def gone_accounts(accounts: list[dict], max_age_hours: float,
                  on_schedule: frozenset[str] = frozenset()) -> list[dict]:
    """Accounts no sync has read for max_age_hours while others were read: removed from the
    configuration (but not forgotten), so they are listed, not counted as failing or stale. An
    account `on_schedule` is not due yet: a pass reads the due accounts only."""
    if not accounts:
        return []
    latest = max(a["started_at"] for a in accounts)
    return [a for a in accounts if a["account_id"] not in on_schedule
            and (latest - a["started_at"]).total_seconds() > max_age_hours * 3600]


def troubled_accounts(accounts: list[dict], max_age_hours: float, now: datetime,
                      gone: list[dict] | None = None, on_schedule: frozenset[str] = frozenset()
                      ) -> tuple[list[dict], list[dict]]:
    """(failing: the last sync of the account failed or was skipped, stale: no success within
    max_age_hours, unless it is `on_schedule`: not due yet) among the sync log's accounts
    (synclog.account_states) still synced (all but `gone`, by default gone_accounts)."""
    gone = gone_accounts(accounts, max_age_hours, on_schedule) if gone is None else gone
    accounts = [a for a in accounts if a not in gone]
    failing = [a for a in accounts if a["result"] in ("failed", "skipped")]
    stale = [a for a in accounts if a not in failing and a["account_id"] not in on_schedule
             and is_stale({"ended_at": a["last_success_at"]} if a["last_success_at"] else None,
                          max_age_hours, now)]
    return failing, stale


@dataclass
class Status:
    """What `status` judges, for the whole dataset or one account (`account`): the last pass
    (PassFacts), the last successful sync log row, the newest run, every account's state
    (synclog.account_states), and from them the accounts that need attention and the exit code.

    A pass reads the accounts that are due: an account `on_schedule` (its `freshness`, judged
    against the newest pass's start, `pass_started_at`: planned, not overdue, within its
    max_staleness) is neither stale nor no longer synced, however long ago it was read."""

    where: str
    now: datetime
    max_age_hours: float
    last: PassFacts | None
    success: dict | None
    newest: datetime | None
    accounts: list[dict]
    account: str | None = None
    # The configured account names, when known (--accounts-file, secrets.toml tables): an
    # account of the log that is not among them is no longer synced, whatever its age.
    configured: frozenset[str] | None = None
    # Each account's schedule (its current state row; {} where none is kept) and the start of
    # the newest pass, which it is judged against.
    freshness: dict[str, Freshness] = field(default_factory=dict)
    pass_started_at: datetime | None = None
    # Alert channels with alerts waiting after a failure (alerts.failing_channels).
    alert_channels: list[dict] = field(default_factory=list)
    failing: list[dict] = field(init=False)
    stale_accounts: list[dict] = field(init=False)
    gone: list[dict] = field(init=False)
    on_schedule: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.failing, self.stale_accounts, self.gone = [], [], []
        self.on_schedule = frozenset(name for name, f in self.freshness.items()
                                     if f.is_on_schedule(self.pass_started_at, self.now))
        if self.account is None and len(self.accounts) < 2:
            return  # one account: its health is the sync's
        gone = ([a for a in self.accounts if a["account_id"] not in self.configured]
                if self.configured else gone_accounts(self.accounts, self.max_age_hours,
                                                      self.on_schedule))
        failing, stale = troubled_accounts(self.accounts, self.max_age_hours, self.now, gone,
                                           self.on_schedule)
        # One account's: judged among all (no longer synced is relative to the others).
        if self.account is not None:
            failing, stale, gone = ([a for a in group if a["account_id"] == self.account]
                                    for group in (failing, stale, gone))
        self.failing, self.stale_accounts, self.gone = failing, stale, gone

    @property
    def stale(self) -> bool:
        if self.account is not None and self.account in self.on_schedule:
            return False  # read as often as it is due
        return is_stale(self.success, self.max_age_hours, self.now)

    @property
    def shown_freshness(self) -> list[Freshness]:
        """The freshness of the account asked about, or of every account still synced, least
        fresh first."""
        if self.account is not None:
            names = [self.account]
        else:
            gone = {a["account_id"] for a in self.gone}
            names = [a["account_id"] for a in self.accounts if a["account_id"] not in gone]
        return least_fresh_first([self.freshness[n] for n in names if n in self.freshness],
                                 self.now, self.pass_started_at)

    @property
    def bad_entries(self) -> list[str]:
        """Bad entries of the accounts configuration in the last pass only: fixed or removed,
        they stop counting."""
        return self.last.bad_entries if self.last is not None and self.account is None else []

    @property
    def exit_code(self) -> int:
        if self.stale:
            return EXIT_STALE
        return EXIT_ATTENTION if self.failing or self.stale_accounts or self.bad_entries \
            or self.alert_channels else 0

    @property
    def verdict(self) -> str:
        return {0: "ok", EXIT_STALE: "stale", EXIT_ATTENTION: "attention"}[self.exit_code]


def row(label: str, text: str) -> str:
    return f"  {label:<14} {text}"


def format_status(status: Status, verbose: bool = False) -> str:
    """The lines `status` prints: the last pass, the last success, the newest run, the accounts
    that need attention, and the verdict last."""
    now = status.now
    whose = f" of account {status.account!r}" if status.account is not None else ""
    lines = [f"zap-runs status{whose} ({status.where})", *pass_lines(status.last, now, verbose)]
    success = status.success
    lines.append(row("last success", ago(success and success["ended_at"], now)))
    if success is not None and success["window_to"] is not None and (
            status.last is None or status.last.window_to is None):
        lines.append(row("window", window_text(success["window_from"], success["window_to"])))
    lines.append(row("newest run", ago(status.newest, now)))
    if status.account is not None:
        lines += [line for f in status.shown_freshness
                  for line in (row("last read", read_text(f, now)),
                               row("next due", due_text(f, now, status.pass_started_at)))]
    if status.account is None and len(status.accounts) > 1:
        lines += format_accounts(status, verbose)
    bad = status.bad_entries
    lines += [row("BAD ENTRY", entry) for entry in bad[:SHOWN]]
    if len(bad) > SHOWN:
        lines.append(f"  ... and {len(bad) - SHOWN:,} more bad entries: see zap_runs_sync_log "
                     "(result 'invalid')")
    lines += [row("ALERTS FAILING", f"{c['channel']}: {c['waiting']:,} waiting since "
                  f"{ago(c['failing_since'], now)}: {c['last_error']}; next try "
                  f"{ago(c['next_attempt_at'], now)}") for c in status.alert_channels]
    return "\n".join(lines + verdict_lines(status))


def pass_lines(last: PassFacts | None, now: datetime, verbose: bool) -> list[str]:
    """When the last pass ran and how it went; what it read and what that cost."""
    if last is None:
        return [row("last sync", "never")]
    when = ago(last.started_at, now)
    length = took(last.started_at, last.ended_at)
    lines = []
    if last.many:
        count = sum(last.accounts.values())
        lines.append(row("last sync", f"{when}: {count:,} account{'s' * (count != 1)} read in {length}"))
        bad = len(last.bad_entries)
        lines.append(row("accounts", ", ".join(f"{last.accounts[r]:,} {word}" for r, word in (
            ("success", "synced"), ("failed", "failed"), ("skipped", "skipped"),
            ("deferred", "deferred")))
            + (f"; {bad_entries(bad)} in the configuration, not read (below)" if bad else "")))
    else:
        how = {"success": f"success in {length}", "failed": f"failed after {length}"}.get(
            last.result, last.result or "?")
        lines.append(row("last sync", f"{when}: {how}" + (f" ({last.error})" if last.error else "")))
    if last.window_to is not None:
        lines.append(row("window", window_text(last.window_from, last.window_to)))
    if last.runs_fetched is not None:
        runs = f"{last.runs_fetched:,} fetched"
        if last.runs_new is not None and last.runs_updated is not None:
            runs += f": {last.runs_new:,} new, {last.runs_updated:,} updated"
        if last.open_runs is not None:
            runs += f"; {last.open_runs:,} still open"
        lines.append(row("runs", runs))
    if last.requests is not None:
        lines.append(row("requests", f"{last.requests:,} ({last.retries or 0:,} retries, "
                                     f"{last.rate_limited or 0:,} rate limited)"))
    if last.budget is not None:
        lines.append(row("needed", needed_text(last.budget, last.spend.checks if last.spend else 0)))
    if verbose and last.spend is not None:
        lines += [row(label, text) for label, text in last.spend.detail()]
    lines += [row("WARNING", warning) for warning in last.warnings[:SHOWN]]
    return lines


def format_accounts(status: Status, verbose: bool = False) -> list[str]:
    """Lines about the accounts: how many, how fresh (with `verbose`, each one's freshness, up to
    SHOWN), then each failing or stale one (up to SHOWN)."""
    now, failing, stale, gone = status.now, status.failing, status.stale_accounts, status.gone
    ok = len(status.accounts) - len(failing) - len(stale) - len(gone)
    lines = [row("health", f"{len(status.accounts):,} accounts: {ok:,} ok, {len(failing):,} "
                           f"failing, {len(stale):,} stale"
                           + (f", {len(gone):,} no longer synced" if gone else ""))]
    fresh = status.shown_freshness
    if fresh:
        lines.append(row("freshness", counts_text(fresh, now, status.pass_started_at)))
    if verbose:
        lines += [row("account", f"{f.account}: read {read_text(f, now)}; next due "
                                 f"{due_text(f, now, status.pass_started_at)}")
                  for f in fresh[:SHOWN]]
        if len(fresh) > SHOWN:
            lines.append(f"  ... and {len(fresh) - SHOWN:,} more: see `status --json` or the "
                         "account_freshness model")
    for account in failing[:SHOWN]:
        why = f" ({account['error']})" if account["error"] else ""
        lines.append(row("FAILING", f"{account['account_id']}: {account['result']} "
                                    f"{ago(account['started_at'], now)}{why}; last success "
                                    f"{ago(account['last_success_at'], now)}"))
    for account in stale[:max(0, SHOWN - len(failing))]:
        lines.append(row("STALE", f"{account['account_id']}: last success "
                                  f"{ago(account['last_success_at'], now)}"))
    for account in gone[:max(0, SHOWN - len(failing) - len(stale))]:
        lines.append(row("NOT SYNCED", f"{account['account_id']}: last read "
                                       f"{ago(account['started_at'], now)}; removed from the "
                                       f"configuration? `forget --account "
                                       f"{account['account_id']}` deletes its data"))
    hidden = len(failing) + len(stale) + len(gone) - SHOWN
    if hidden > 0:
        lines.append(f"  ... and {hidden:,} more: see zap_runs_sync_log or the account_health model")
    return lines


def verdict_lines(status: Status) -> list[str]:
    """STALE or OK, then what needs attention (exit 4)."""
    hours = f"{status.max_age_hours:g} h"
    if status.account is not None:
        return [account_verdict(status, hours)]
    lines = [f"STALE: no successful sync in the last {hours}" if status.stale else
             f"OK: the last successful sync is within {hours}"]
    trouble = []
    if status.failing or status.stale_accounts:
        trouble.append("SOME ACCOUNTS FAILING OR STALE")
    if status.bad_entries:
        trouble.append("BAD ENTRIES IN THE ACCOUNTS CONFIGURATION")
    if status.alert_channels:
        trouble.append("ALERTS NOT DELIVERED")
    if trouble and not status.stale:
        lines.append(f"{', AND '.join(trouble)} (exit {EXIT_ATTENTION})")
    return lines


def account_verdict(status: Status, hours: str) -> str:
    name = status.account
    if status.gone:
        return (f"NOT SYNCED: no sync has read account {name!r} for {hours} while others were read "
                f"(removed from the configuration? `forget --account {name}` deletes its data)")
    last = status.failing and ("the last sync skipped it" if status.failing[0]["result"] ==
                               "skipped" else "its last sync failed")
    if status.stale:
        also = f", and {last}" if last else ""
        return f"STALE: no successful sync of account {name!r} in the last {hours}{also}"
    if last:
        return f"FAILING: account {name!r}: {last} (exit {EXIT_ATTENTION})"
    if is_stale(status.success, status.max_age_hours, status.now):  # on schedule
        return (f"OK: account {name!r} is on schedule: no pass has missed it since it came due, "
                f"and it was read within its max_staleness")
    return f"OK: the last successful sync of account {name!r} is within {hours}"
