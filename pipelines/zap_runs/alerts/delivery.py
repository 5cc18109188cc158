"""Delivering incidents: after the models are built, every incident of zap_incidents that opened
or resolved since the last delivery goes to the channels that cover its account, at least once,
with its delivery state in the warehouse table zap_incident_alerts, next to the incidents.

A transition is written there as `pending` before it is sent and as `sent` after, so a process
killed in between sends it again at the next delivery, with the same idempotency key. A channel
that fails keeps its transitions pending and is tried again after a backoff that doubles per
failed attempt (1 minute to an hour), across syncs; a delivery never raises into the sync.
An incident is known by (account, zap, its first failed run): the models are rebuilt from the
runs each time, and an incident that vanishes (its failures were replayed into successes) is
told as resolved. Transitions already old when first seen (a new account's backfill, alerts
configured on an old warehouse) are recorded as `skipped`, not sent, unless still open.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

import dlt
import sqlglot

from ..common import clock
from ..common.errors import first_line
from ..common.settings import SQL_DIALECTS
from ..common.sqltables import columns_of, in_utc
from .channels import Channel
from .messages import Transition, message_key, transition_key

log = logging.getLogger(__name__)

TABLE = "zap_incident_alerts"
INCIDENTS = "zap_incidents"
DATA = {"event": "varchar", "account_id": "varchar", "zap_id": "bigint", "zap_title": "varchar",
        "opened_at": "timestamptz", "first_failed_at": "timestamptz",
        "last_failed_at": "timestamptz", "resolved_at": "timestamptz", "failed_runs": "bigint",
        "first_failed_run_id": "varchar", "first_failed_step": "bigint",
        "first_failed_status": "varchar", "reason": "varchar"}
STATE = {"state": "varchar", "found_at": "timestamptz", "message_key": "varchar", "attempts": "bigint",
         "next_attempt_at": "timestamptz", "failing_since": "timestamptz",
         "sent_at": "timestamptz", "last_error": "varchar"}
COLUMNS = {"channel": "varchar", "idempotency_key": "varchar", **DATA, **STATE}
# Transitions found older than this (by the newest run's start) are recorded, not sent.
MAX_AGE_HOURS = 24.0
BACKOFF_FIRST_MINUTES, BACKOFF_MAX_MINUTES = 1.0, 60.0
# More transitions than this for one channel at once go as digests, not a flood; a digest holds
# at most DIGEST_AT_MOST (a receiver's body limit).
SEPARATE_AT_MOST, DIGEST_AT_MOST = 10, 50
DROPPED = "the channel is no longer configured"
VANISHED = "its failed runs were replayed or changed status, so it no longer meets the rules"


@dataclass
class ChannelResult:
    """What a delivery did for one channel."""

    channel: Channel
    sent: int = 0
    waiting: int = 0  # transitions still pending after it
    error: str | None = None  # the last failure, while transitions wait
    failing_since: datetime | None = None
    next_attempt_at: datetime | None = None
    tried: bool = False  # a message was attempted in this delivery (not only waiting)


@dataclass
class Delivery:
    results: list[ChannelResult] = field(default_factory=list)
    skipped: int = 0  # transitions recorded as too old to send

    @property
    def sent(self) -> int:
        return sum(r.sent for r in self.results)

    @property
    def failing(self) -> list[ChannelResult]:
        return [r for r in self.results if r.error is not None]


def deliver(pipeline: dlt.Pipeline, channels: list[Channel], now: datetime | None = None
            ) -> Delivery | None:
    """Send what changed to `channels`; None when there is nothing to do (no channel, no SQL
    destination, no models yet). Never raises: a failure is logged and reported."""
    dialect = SQL_DIALECTS.get(pipeline.destination.destination_name)
    if dialect is None:
        return None
    now = now or clock.utcnow()
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(TABLE)
            incidents = client.make_qualified_table_name(INCIDENTS)
            if not channels:
                _drop_unconfigured(client, table, set())
                return None
            if columns_of(client, incidents) is None:
                return None
            in_utc(client, dialect)  # times read back in UTC, as the messages write them
            ensure_table(client, table, dialect)
            _drop_unconfigured(client, table, {c.name for c in channels})
            delivery = Delivery()
            delivery.skipped = _find(client, table, incidents, channels, now)
            for channel in channels:
                delivery.results.append(_deliver_to(client, table, channel, now))
    except Exception as exc:  # noqa: BLE001 - alerts never fail the sync that loaded the data
        log.warning("alerts: could not deliver (the data is loaded; the next sync tries again): %s",
                    first_line(exc, 200))
        return None
    for result in (r for r in delivery.failing if r.tried):
        log.warning("alerts: channel %s failing since %s: %s; %d alert(s) waiting, next try at %s",
                    result.channel.name, _at(result.failing_since), result.error, result.waiting,
                    _at(result.next_attempt_at))
    return delivery


def _at(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "?"


def ensure_table(client, table: str, dialect: str) -> None:
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    client.execute_sql(sqlglot.transpile(f"create table if not exists t_ ({columns})",
                                         read="postgres", write=dialect)[0].replace("t_", table, 1))


def _drop_unconfigured(client, table: str, names: set[str]) -> None:
    """Transitions waiting for a channel no longer configured are dropped (state 'dropped'):
    they are no alert of anyone's any more, and status stops counting them."""
    if columns_of(client, table) is None:
        return
    waiting = {r["channel"] for r in _rows(client, f"select distinct channel from {table} "
                                                   "where state = 'pending'")}
    for name in sorted(waiting - names):
        client.execute_sql(f"update {table} set state = 'dropped', last_error = %s where "
                           "channel = %s and state = 'pending'", DROPPED, name)


def _rows(client, sql: str, *args: object) -> list[dict]:
    with client.execute_query(sql, *args) as cursor:
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def transitions_of(incident: dict) -> list[Transition]:
    """An incident row's transitions: opened, and resolved once it is."""
    data = {f.name: incident.get(f.name) for f in fields(Transition)
            if f.name not in ("key", "event", "reason")}
    data["first_failed_run_id"] = str(data["first_failed_run_id"])
    events = ["opened"] + (["resolved"] if incident["resolved_at"] is not None else [])
    return [Transition(transition_key(incident["account_id"], incident["zap_id"],
                                      incident["first_failed_run_id"], event), event, **data)
            for event in events]


def _find(client, table: str, incidents: str, channels: list[Channel], now: datetime) -> int:
    """Write the transitions each channel has not seen as pending (or skipped when old); tell
    vanished incidents as resolved. The number skipped."""
    found = _rows(client, f"select * from {incidents}")
    # "Old" is judged by the data's time (the newest run), not the clock: a warehouse synced
    # after a gap, or a simulated world, is as recent as its runs.
    runs = client.make_qualified_table_name("stg_zap_runs")
    newest = _rows(client, f"select max(started_at) as newest from {runs}")[0]["newest"] or now
    known = {(r["channel"], r["idempotency_key"]): r
             for r in _rows(client, f"select channel, idempotency_key, event, state, attempts, "
                                    f"{', '.join(DATA)} from {table}")}
    current = {(i["account_id"], str(i["zap_id"]), str(i["first_failed_run_id"])) for i in found}
    names = {c.name for c in channels}
    rows, skipped, obsolete = [], 0, []
    for channel in channels:
        for incident in found:
            if not channel.covers(incident["account_id"]):
                continue
            recent = incident["resolved_at"] is None or \
                incident["resolved_at"] >= newest - timedelta(hours=MAX_AGE_HOURS)
            opened, *resolved = transitions_of(incident)
            told = known.get((channel.name, opened.key), {}).get("state") in ("pending", "sent")
            for t in (opened, *resolved):
                if (channel.name, t.key) not in known:
                    send = recent or told  # a channel told of the opening hears of the end
                    rows.append((channel.name, t, "pending" if send else "skipped"))
                    skipped += not send
    for (name, _), row in known.items():
        ident = (row["account_id"], str(row["zap_id"]), str(row["first_failed_run_id"]))
        if name not in names or row["event"] != "opened" or row["state"] == "skipped" \
                or ident in current:
            continue
        resolved = transition_key(*ident, "resolved")
        if (name, resolved) in known:
            continue
        if row["state"] == "pending" and not row["attempts"]:
            obsolete.append((name, row["idempotency_key"]))  # never sent: nothing to take back
            continue
        data = {k: row[k] for k in DATA if k not in ("event", "reason", "resolved_at")}
        rows.append((name, Transition(resolved, "resolved", resolved_at=newest, reason=VANISHED,
                                      **data), "pending"))
    _insert(client, table, rows, now)
    with client.begin_transaction():
        for name, key in obsolete:
            client.execute_sql(f"update {table} set state = 'skipped', last_error = %s where "
                               "channel = %s and idempotency_key = %s", VANISHED, name, key)
    return skipped


def _insert(client, table: str, rows: list[tuple[str, Transition, str]], now: datetime) -> None:
    names = list(COLUMNS)
    values = f"({', '.join(['%s'] * len(names))})"
    with client.begin_transaction():
        for start in range(0, len(rows), 100):
            chunk = rows[start:start + 100]
            args = []
            for channel, t, state in chunk:
                data = {"channel": channel, "idempotency_key": t.key, "state": state,
                        "found_at": now, "attempts": 0, **{k: getattr(t, k) for k in DATA}}
                args += [data.get(name) for name in names]
            client.execute_sql(f"insert into {table} ({', '.join(names)}) values "
                               + ", ".join([values] * len(chunk)), *args)


def _pending(client, table: str, channel: Channel) -> list[dict]:
    return _rows(client, f"select * from {table} where channel = %s and state = 'pending' order by "
                         "found_at, opened_at, account_id, zap_id, event", channel.name)


def _messages(channel: Channel, pending: list[dict]) -> list[tuple[str, list[Transition]]]:
    """(idempotency key, transitions) of each message to send: a set tried before goes again as
    it was, under its key; the others one a message, or as digests (the channel asks for them,
    or more than SEPARATE_AT_MOST wait), each of at most DIGEST_AT_MOST."""
    tried: dict[str, list[Transition]] = {}
    fresh: list[Transition] = []
    for row in pending:
        t = Transition(row["idempotency_key"], **{k: row[k] for k in DATA})
        (tried.setdefault(row["message_key"], []) if row["message_key"] else fresh).append(t)
    messages = list(tried.items())
    if channel.digest or len(fresh) > SEPARATE_AT_MOST:
        chunks = [fresh[i:i + DIGEST_AT_MOST] for i in range(0, len(fresh), DIGEST_AT_MOST)]
        messages += [(message_key(chunk), chunk) for chunk in chunks]
    else:
        messages += [(t.key, [t]) for t in fresh]
    return messages


def _deliver_to(client, table: str, channel: Channel, now: datetime) -> ChannelResult:
    """Send a channel's pending transitions, unless it is backing off; stop at its first failure.
    Each message's key and attempt are recorded before it is sent: a process killed after
    sending sends the same set again, under the same key."""
    from .sending import SendError, send  # status, which reads this table, loads no HTTP client

    result = ChannelResult(channel)
    pending = _pending(client, table, channel)
    waits = [r["next_attempt_at"] for r in pending if r["next_attempt_at"] is not None]
    if waits and max(waits) > now:
        return _waiting(result, pending)
    for key, message in _messages(channel, pending):
        marks = ", ".join(["%s"] * len(message))
        keys = [t.key for t in message]
        client.execute_sql(f"update {table} set message_key = %s, attempts = attempts + 1 where "
                           f"channel = %s and idempotency_key in ({marks})", key, channel.name, *keys)
        result.tried = True
        try:
            send(channel, message, key)
        except SendError as exc:
            attempts = 1 + max(r["attempts"] or 0 for r in pending if r["idempotency_key"] in keys)
            backoff = min(BACKOFF_MAX_MINUTES, BACKOFF_FIRST_MINUTES * 2 ** (attempts - 1))
            client.execute_sql(f"update {table} set last_error = %s, next_attempt_at = %s, "
                               "failing_since = coalesce(failing_since, %s) where channel = %s and "
                               "state = 'pending'", str(exc), now + timedelta(minutes=backoff), now,
                               channel.name)
            return _waiting(result, _pending(client, table, channel))
        client.execute_sql(f"update {table} set state = 'sent', sent_at = %s, last_error = null, "
                           f"next_attempt_at = null, failing_since = null where channel = %s and "
                           f"idempotency_key in ({marks})", now, channel.name, *keys)
        result.sent += len(message)
    return result


def _waiting(result: ChannelResult, pending: list[dict]) -> ChannelResult:
    result.waiting = len(pending)
    failed = [r for r in pending if r["last_error"] is not None]
    if failed:
        result.error = failed[0]["last_error"]
        result.failing_since = min(r["failing_since"] for r in failed if r["failing_since"])
        result.next_attempt_at = max(r["next_attempt_at"] for r in failed if r["next_attempt_at"])
    return result


def failing_channels(pipeline: dlt.Pipeline) -> list[dict]:
    """For `status`: each channel with transitions waiting after a failure (channel, waiting,
    failing_since, next_attempt_at, last_error); [] when there is no alerts table."""
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(TABLE)
        if columns_of(client, table) is None:
            return []
        return _rows(client, f"select channel, count(*) as waiting, min(failing_since) as "
                             f"failing_since, max(next_attempt_at) as next_attempt_at, "
                             f"max(last_error) as last_error from {table} where state = 'pending' "
                             f"and failing_since is not null group by channel order by channel")


def summary_lines(delivery: Delivery | None) -> list[str]:
    """The sync summary's lines about alerts: what was sent where, and failing channels."""
    if delivery is None:
        return []
    sent = [f"{r.channel.name} {r.sent}" for r in delivery.results if r.sent]
    lines = [f"  alerts     {delivery.sent:,} sent" + (f" ({', '.join(sent)})" if sent else "")
             + (f"; {delivery.skipped:,} older than {MAX_AGE_HOURS:g} h recorded, not sent"
                if delivery.skipped else "")]
    lines += [f"  alerts     channel {r.channel.name} FAILING since {_at(r.failing_since)}: "
              f"{r.error}; {r.waiting:,} waiting, next try {_at(r.next_attempt_at)}"
              for r in delivery.failing]
    return lines
