"""Client-side pacing: requests spaced under the configured ceiling and slowed further by what
the server says is left of its rate budget, so a 429 never comes as a surprise.

Zapier allows 60 requests a minute per IP, and that budget is shared with everything else the
user runs from the same address, so a ceiling alone cannot be safe. Every answer that carries
X-RateLimit-Remaining (R) and X-RateLimit-Reset (in T seconds; Limit L) tells how much is left,
and the policy, which fits a sliding window (the Reset is when one more slot frees) and a fixed
one (the Reset is when all of them do) alike, is:

- R at least half of L: plenty is left and the headers slow nothing, so a sync with budget
  to spare runs at the ceiling (a short one finishes in a burst).
- 0 < R < L/2: the next request waits until the last one plus T/R, spreading the remaining
  slots evenly until the reset instead of spending them at once; at R == 1 that is the reset
  itself, so one slot stays in reserve for the user's other traffic, and in a sliding window
  the client settles at the rate slots free up.
- R == 0: nothing goes until the reset. Only one slot is sure to free then, so past it one
  request goes and the next waits for the answer to it; if no answer comes (the request
  failed without one), the ceiling alone paces again.

T is the latest instant the header can mean: an integral Reset may be truncated to the second,
so a second is added, and a quarter of a second more for jitter. A Reset in Unix time is read
against the local clock, or against the server's Date when the two disagree by more than two
seconds; small values are seconds-until; anything beyond Zapier's 60 s window or cooldown is
bogus and is capped there (logged once). Answers without usable Remaining and Reset change
nothing: the ceiling and Retry-After still apply. The ceiling (`rate`) is never exceeded: the
headers only ever add waiting.

Requests may be in flight at once (paging's look-ahead uses two threads), so an answer's R is
taken as a lower bound: every request that was in flight when it was sent, or was sent after
it, is assumed to have used a slot the answer does not show yet. `wait` hands out a ticket and
`answered(ticket, headers)` takes it back, response or not.
"""

from __future__ import annotations

import email.utils
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC

from ..common import clock as sync_clock

log = logging.getLogger(__name__)

# Spacing is a hair wider than 60/rate: server clocks and network jitter can bunch requests.
SAFETY = 1.01
ZAPIER_LIMIT = 60  # requests per window, when an answer states no usable X-RateLimit-Limit
WINDOW = 60.0  # Zapier's window and its cooldown after a 429: no honest Reset is further away
GRAIN = 1.0  # an integral Reset may have been truncated to the second
SLACK = 0.25  # network and clock jitter on top of the Reset
CAP = WINDOW + GRAIN + SLACK
TIGHT = 0.5  # below this share of the limit left, the remaining slots are spread to the reset
SKEW = 2.0  # a local clock this far from the server's Date is taken as wrong
EPOCH = 1e9  # a Reset above this is Unix time (2001 on); below it, seconds from now
EPOCH_MS = 1e12  # ... and above this, Unix time in milliseconds
POLL = 0.05  # while waiting for an answer in flight to tell what is left


@dataclass(frozen=True)
class Budget:
    """What one answer says of the server's rate budget."""

    remaining: int
    reset_in: float  # seconds until at least one more request is allowed: an upper bound
    limit: int | None


def read_budget(headers: Mapping[str, str], wall: float) -> Budget | None:
    """The budget stated by X-RateLimit-* headers, or None if they are missing or garbage.

    `wall` is the local Unix time, to read a Reset given as Unix time.
    """
    get = {name.lower(): value for name, value in headers.items()}.get
    remaining = _number(get("x-ratelimit-remaining"))
    reset = _number(get("x-ratelimit-reset"))
    if remaining is None or reset is None:
        return None
    limit = _number(get("x-ratelimit-limit"))
    grain = GRAIN if reset == int(reset) else 0.0
    if reset >= EPOCH_MS:
        reset, grain = reset / 1000, grain / 1000
    if reset >= EPOCH:
        reset -= _server_now(wall, get("date"))
    return Budget(int(remaining), max(0.0, reset) + grain + SLACK,
                  int(limit) if limit and limit >= 1 else None)


def _number(value: str | None) -> float | None:
    try:
        number = float(value.strip())  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _server_now(wall: float, date: str | None) -> float:
    """The server's Unix time: the local clock, unless the server's Date says it is off."""
    try:
        when = email.utils.parsedate_to_datetime(date)  # type: ignore[arg-type]
        stated = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return wall
    return stated if abs(wall - (stated + 0.5)) > SKEW else wall  # Date is truncated too


@dataclass(frozen=True)
class _Known:
    """The newest answer's budget: `left` slots for sure once requests after `ticket` are
    taken off, until `reset_at` (the pacer's clock), when at least one more frees."""

    ticket: int
    left: int
    reset_at: float
    limit: int


class Pacer:
    """Blocks until the next request may start; `rate` is requests per minute (None or 0: no
    ceiling, the server's headers still pace)."""

    def __init__(self, rate: float | None, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None,
                 wall: Callable[[], float] | None = None) -> None:
        # By default the sync's clock (common/clock.py): real time, or a benchmark's simulated time.
        self.set_rate(rate)
        self._clock = clock if clock is not None else sync_clock.monotonic
        self._sleep = sleep if sleep is not None else sync_clock.sleep
        self._wall = wall if wall is not None else sync_clock.wall
        # One request at a time is let go, its sender holding `_lock` through its wait;
        # `_state` guards what answers and holds change meanwhile, never held through a sleep.
        self._lock = threading.Lock()
        self._state = threading.Lock()
        self._next = 0.0  # the ceiling's and Retry-After's earliest next start
        self._sent = 0
        self._flying: dict[int, int] = {}  # ticket -> requests in flight when it was sent
        self._last_sent = 0.0
        self._known: _Known | None = None
        self._warned = False
        # The wait so far, read by other threads while `_lock` is held through a sleep.
        self._tally = threading.Lock()
        self._waited = 0.0
        self._waiting_since: float | None = None

    def set_rate(self, rate: float | None) -> None:
        """The ceiling from now on (a loop keeps one pacer across its rounds: what the last
        round sent, and the server said, still paces the next one's first requests)."""
        self.interval = 0.0 if not rate else 60.0 / rate * SAFETY

    @property
    def waited(self) -> float:
        """Seconds spent waiting so far (ceiling, rate headers, Retry-After, cooldowns), the
        wait under way included: a progress display may read it from another thread any time."""
        with self._tally:
            since = self._waiting_since
            return self._waited + (self._clock() - since if since is not None else 0.0)

    def wait(self) -> int:
        """Blocks until the next request may start; returns its ticket for `answered`."""
        with self._lock:
            began = reached = self._clock()
            try:
                while True:
                    with self._state:
                        now = max(self._clock(), reached)
                        until = self._until(now)
                        if until is not None and until <= now:
                            return self._send(now)
                    with self._tally:
                        if self._waiting_since is None:
                            self._waiting_since = began
                    pause = POLL if until is None else until - now
                    self._sleep(pause)
                    reached = now + pause  # a sleep that returns early counts as done
            finally:
                with self._tally:
                    if self._waiting_since is not None:
                        self._waited += self._clock() - began
                        self._waiting_since = None

    def answered(self, ticket: int, headers: Mapping[str, str] | None) -> None:
        """The request `ticket` is over; its answer's headers (None: no answer) may say what
        is left of the server's budget."""
        budget = read_budget(headers, self._wall()) if headers else None
        with self._state:
            unseen = self._flying.pop(ticket, 0)
            if budget is None or (self._known is not None and ticket < self._known.ticket):
                return
            reset_in = budget.reset_in
            if reset_in > CAP:
                if not self._warned:
                    self._warned = True
                    log.warning("The API's X-RateLimit-Reset is %.0f s away, beyond Zapier's "
                                "%.0f s window; waiting at most %.0f s for it", reset_in,
                                WINDOW, CAP)
                reset_in = CAP
            limit = budget.limit
            if limit is None or limit < budget.remaining:
                limit = max(budget.remaining, ZAPIER_LIMIT)
            self._known = _Known(ticket, budget.remaining - unseen, self._clock() + reset_in,
                                 limit)

    def hold(self, seconds: float) -> None:
        """Nothing may be sent for `seconds` (a Retry-After or a cooldown)."""
        with self._state:
            self._next = max(self._next, self._clock() + seconds)

    def _until(self, now: float) -> float | None:
        """When the next request may start, or None: not before an answer in flight."""
        known = self._known
        if known is None:
            return self._next
        left = known.left - (self._sent - known.ticket)
        if now >= known.reset_at:
            left += 1
            if left >= 1:
                return self._next
            if self._flying:
                return None
            self._known = None  # spent, and no answer coming to renew it: the ceiling alone
            return self._next
        if left <= 0:
            return max(self._next, known.reset_at)
        if left < TIGHT * known.limit:
            return max(self._next, self._last_sent + (known.reset_at - self._last_sent) / left)
        return self._next

    def _send(self, now: float) -> int:
        self._sent += 1
        self._flying[self._sent] = len(self._flying)
        self._last_sent = now
        self._next = now + self.interval
        return self._sent
