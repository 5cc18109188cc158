"""When the commands deliver alerts: after a sync's models (and `models`), after each round of
`--loop`, and `alerts test`. The channels are read after the load, each time: a bad alerts
configuration never keeps runs out of the warehouse; it is reported once they are in."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping

import dlt

from ..accounts.entries import collect
from ..alerts.channels import Channel, account_channels, partner_channels
from ..alerts.delivery import Delivery, deliver, summary_lines
from ..alerts.messages import sample
from ..common.errors import ConfigError, first_line
from ..warehouse.models import build_incidents

log = logging.getLogger(__name__)


def configured_channels(accounts_file: str | None = None, accounts: Iterable | None = None
                        ) -> list[Channel]:
    """Every channel of the configuration: partner-wide ones, then each account's own (from
    [sources.zap_runs.accounts.<name>], the accounts file, or `accounts` given by an app)."""
    channels = partner_channels(dlt.secrets.get("sources.zap_runs.alerts"))
    named = dlt.secrets.get("sources.zap_runs.accounts")
    file = accounts_file or dlt.config.get("sources.zap_runs.accounts_file")
    found = collect(named if isinstance(named, Mapping) else None, file, accounts, {})
    for account in found.accounts:
        if account.alerts is not None:
            channels.extend(account_channels(account.name, account.alerts, account.where))
    names = [c.name for c in channels]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"alert channel {twice[0]!r} is configured twice: give each a name of "
                          "its own.")
    return channels


def read_channels(accounts_file: str | None = None, accounts: Iterable | None = None
                  ) -> tuple[list[Channel], ConfigError | None]:
    """The configured channels, or ([], the problem) when the alerts configuration is bad."""
    try:
        return configured_channels(accounts_file, accounts), None
    except ConfigError as exc:
        return [], ConfigError(f"the runs are loaded, but no alert was sent: {exc}")


def after_models(pipeline: dlt.Pipeline, channels: list[Channel] | None = None,
                 accounts_file: str | None = None, accounts: Iterable | None = None
                 ) -> tuple[list[str], ConfigError | None]:
    """Deliver to `channels` (else the configured ones): the summary's lines, and a problem of
    the alerts configuration for the caller to raise once its output is printed."""
    problem = None
    if channels is None:
        channels, problem = read_channels(accounts_file, accounts)
    if problem is not None:  # nothing is sent, and nothing pending is dropped
        return [f"  alerts     NOT SENT: {problem}"], problem
    return summary_lines(deliver(pipeline, channels)), None


def loop_callbacks(pipeline: dlt.Pipeline, accounts_file: str | None
                   ) -> tuple[Callable[[str], str], Callable[[int], str]]:
    """The loop's (after its models are rebuilt: the models' line and the alerts'; after any
    other round that loaded: the alerts', with zap_incidents rebuilt alone if runs came)."""

    def after_build(models_line: str) -> str:
        lines, problem = after_models(pipeline, accounts_file=accounts_file)
        if problem is not None:
            log.error("%s", problem)
        return "\n".join([models_line, *([] if problem else lines)])

    def after_load(runs: int) -> str:
        channels, problem = read_channels(accounts_file)
        if problem is not None:
            log.error("%s", problem)
            return ""
        if not channels:  # nothing to deliver: no connection a round (after_build tidies up)
            return ""
        delivery = incidents_and_alerts(pipeline, channels, rebuild=runs > 0)
        quiet = delivery is None or not (delivery.sent or any(r.tried for r in delivery.failing))
        return "" if quiet else "\n".join(summary_lines(delivery))

    return after_build, after_load


def incidents_and_alerts(pipeline: dlt.Pipeline, channels: list[Channel], rebuild: bool = True
                         ) -> Delivery | None:
    """zap_incidents rebuilt alone (`rebuild`), then delivered; None when it cannot be rebuilt
    (before the first build of the models: their build delivers)."""
    if rebuild and channels:
        try:
            if build_incidents(pipeline) is None:
                return None
        except Exception as exc:  # noqa: BLE001 - the data is loaded; the next rebuild tries again
            log.warning("alerts: could not rebuild zap_incidents: %s", first_line(exc, 200))
            return None
    return deliver(pipeline, channels)


def test_channels(channels: list[Channel]) -> tuple[list[str], int]:
    """`alerts test`: a sample to each channel; a line each, and how many failed."""
    from ..alerts.sending import SendError, send

    lines, failed = [], 0
    for channel in channels:
        began = time.monotonic()
        try:
            send(channel, [sample(channel)])
        except SendError as exc:
            failed += 1
            lines.append(f"FAILED  {channel.describe()}: {exc}")
            continue
        lines.append(f"ok      {channel.describe()}: sent in {time.monotonic() - began:.2f} s")
    lines.append(f"{len(channels) - failed} of {len(channels)} channels took the test alert")
    return lines, failed
