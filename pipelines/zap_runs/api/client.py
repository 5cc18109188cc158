"""HTTP client for GET /v2/zap-runs: pacing, timeouts, retries with backoff, Retry-After."""

from __future__ import annotations

import email.utils
import logging
import random
import threading
from dataclasses import dataclass
from datetime import UTC
from urllib.parse import urlencode

import httpx
import msgspec

from ..common import clock, settings
from ..common.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    RetriesExhausted,
    ScopeError,
    UnreachableError,
    malformed_run,
)
from .jsonvalues import json_loads
from .oauth import RefreshingToken, StaticToken
from .pacing import Pacer
from .runs import PAGE_DECODER, ApiRun, MalformedRun, run_from_dict

log = logging.getLogger(__name__)


@dataclass
class Stats:
    """What the client did, for the summary."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0


@dataclass
class Page:
    """One page of runs, whatever body shape the server chose."""

    data: list[ApiRun]
    count: int | None
    next_url: str | None


class ZapierClient:
    """Talks to the Partner API; never logs or raises anything that contains the token."""

    def __init__(self, base_url: str, access_token: str | StaticToken | RefreshingToken, *,
                 timeout: float = settings.DEFAULT_TIMEOUT,
                 max_retries: int = settings.DEFAULT_MAX_RETRIES,
                 requests_per_minute: float | None = settings.DEFAULT_REQUESTS_PER_MINUTE,
                 backoff_base: float = settings.DEFAULT_BACKOFF_BASE,
                 backoff_max: float = settings.DEFAULT_BACKOFF_MAX,
                 default_retry_after: float = settings.DEFAULT_RETRY_AFTER,
                 sleep=None, pacer: Pacer | None = None, stats: Stats | None = None,
                 http: httpx.Client | None = None) -> None:
        """`pacer`, `stats` and `http` may be shared by the clients of many accounts: one
        process then keeps one rate budget, one count and one connection pool."""
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.tokens = StaticToken(access_token) if isinstance(access_token, str) else access_token
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.default_retry_after = default_retry_after
        self.pacer = pacer if pacer is not None else Pacer(requests_per_minute, sleep=sleep)
        self._sleep = sleep if sleep is not None else clock.sleep
        self.stats = stats if stats is not None else Stats()
        # get_runs may run in two threads at once (paging.fetch_window's look-ahead).
        self._lock = threading.Lock()
        self._owns_http = http is None
        self._http = http if http is not None else http_client(timeout)

    @property
    def paced(self) -> bool:
        return self.pacer.interval > 0

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def _refresh(self, refused: str) -> bool:
        with self._lock:
            return self.tokens.on_unauthorized(refused) not in (None, refused)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def get_runs(self, params: dict[str, str]) -> Page:
        """One page of GET /v2/zap-runs, retried through transient failures."""
        url = self.base_url + settings.ENDPOINT
        shown = describe(params)
        query = urlencode(params)
        attempt = 0
        refreshed = False
        while True:
            with self._lock:  # one refresh at a time: a refresh token may rotate
                token = self.tokens.current()
            ticket = self.pacer.wait()
            self._count("requests")
            response = None
            try:
                # The query string built once here costs a third less than httpx's params=.
                response = self._http.get(f"{url}?{query}",
                                          headers={"Authorization": f"Bearer {token}"})
            except httpx.TimeoutException:
                problem, wait = "timed out", None
            except httpx.TransportError as exc:
                problem, wait = f"could not connect ({type(exc).__name__})", None
            finally:  # its X-RateLimit-* headers pace the requests after it (pacing.py)
                self.pacer.answered(ticket, None if response is None else response.headers)
            if response is not None:
                status = response.status_code
                if status == 200:
                    try:
                        return parse_page(response.content)
                    except MalformedRun as exc:
                        raise malformed_run(shown, exc.run_id, exc.problem) from None
                    except ValueError as exc:
                        problem, wait = f"returned a malformed body ({exc})", None
                elif status == 429:
                    self._count("rate_limited")
                    wait = retry_after(response.headers.get("Retry-After"), self.default_retry_after)
                    self.pacer.hold(wait)
                    problem = "was rate limited (429)"
                elif status == 503:
                    wait = retry_after(response.headers.get("Retry-After"), self.default_retry_after)
                    self.pacer.hold(wait)
                    problem = "was unavailable (503)"
                elif status >= 500:
                    problem, wait = f"failed with {status}", None
                elif status == 401 and not refreshed and self._refresh(token):
                    refreshed = True  # the access token expired early: once with a fresh one
                    self._count("retries")
                    continue
                else:
                    raise client_error(response, shown, self.base_url)
            attempt += 1
            if attempt > self.max_retries:
                if problem.startswith("could not connect"):
                    raise UnreachableError(
                        f"Cannot reach the Zapier API at {self.base_url}: {problem} after "
                        f"{self.max_retries} retries. Check base_url and the network.",
                        url=self.base_url)
                advice = ("the API keeps sending data that breaks its contract: report it to "
                          "Zapier" if "malformed" in problem else
                          "the API may be down: run the sync again later")
                raise RetriesExhausted(
                    f"{shown} {problem}; gave up after {self.max_retries} retries; {advice}. "
                    "Nothing of this sync was committed and its cursor did not move, so the next "
                    "sync reads the same runs again.", url=shown)
            self._count("retries")
            if wait is None:
                wait = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
                wait = random.uniform(wait / 2, wait)  # jitter: retries of many clients spread out
                self._sleep(wait)
            log.warning("%s %s; retry %d/%d in %.1fs", shown, problem, attempt, self.max_retries, wait)


def http_client(timeout: float) -> httpx.Client:
    """The HTTP client API requests go through (no redirects: a token never follows one)."""
    return httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False,
                        headers={"Accept": "application/json", "User-Agent": "zap-runs-sync/0.1"})


def describe(params: dict[str, str]) -> str:
    """A request as errors and logs show it (never with the token)."""
    return f"GET {settings.ENDPOINT}?" + "&".join(f"{k}={v}" for k, v in params.items())


def retry_after(value: str | None, default: float) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date."""
    if not value:
        return default
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - clock.utcnow()).total_seconds())


def parse_page(body: bytes) -> Page:
    """A page from the contract's array-wrapped shape or the plain object clients see.

    Runs come back as ApiRun; a run with fields of the wrong type raises MalformedRun, a body
    that is not a page of runs at all raises ValueError (that may be a transient fault).
    """
    try:
        decoded = PAGE_DECODER.decode(body)
    except msgspec.DecodeError:
        return _parse_page_generic(body)
    parts = decoded if isinstance(decoded, list) else [decoded]
    data: list[ApiRun] = []
    count = next_url = None
    for part in parts:
        data += part.data
        if part.meta is not None and part.meta.count is not None:
            count = part.meta.count
        if part.links is not None and part.links.next is not None:
            next_url = part.links.next
    return Page(data, count, next_url)


def _parse_page_generic(body: bytes) -> Page:
    try:
        payload = json_loads(body)
    except ValueError as exc:
        raise ValueError(f"not JSON: {str(exc)[:80]}") from None
    parts = payload if isinstance(payload, list) else [payload]
    data: list[ApiRun] = []
    count = next_url = None
    for part in parts:
        if not isinstance(part, dict) or not isinstance(part.get("data", []), list):
            raise ValueError("expected an object with a 'data' list")
        runs = part.get("data") or []
        for run in runs:
            if not isinstance(run, dict) or not isinstance(run.get("id"), str):
                raise ValueError("a run without a string 'id'")
        data += [run_from_dict(run) for run in runs]
        meta = part.get("meta") or {}
        links = part.get("links") or {}
        if isinstance(meta.get("count"), int):
            count = meta["count"]
        next_url = links.get("next") if isinstance(links.get("next"), str) else next_url
    return Page(data, count, next_url)


def client_error(response: httpx.Response, shown: str, base_url: str) -> ApiError:
    """A one-line, actionable error for a 4xx answer."""
    status = response.status_code
    detail = _detail(response)
    if status == 401:
        return AuthError(
            f"The Zapier API rejected the access token (401{detail}). Set a valid token as "
            "access_token under [sources.zap_runs] in .dlt/secrets.toml or in "
            "SOURCES__ZAP_RUNS__ACCESS_TOKEN.", status, shown)
    if status == 403:
        return ScopeError(
            f"The access token lacks the zap:runs scope (403{detail}). Re-authorise the app "
            "with the zap:runs scope and use the new token.", status, shown)
    if status == 400:
        return BadRequestError(
            f"The Zapier API refused {shown} (400{detail}). Check --since and the "
            "[sources.zap_runs] settings.", status, shown)
    return ApiError(f"The Zapier API answered {status}{detail} to {shown} at {base_url}.",
                    status, shown)


def _detail(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        text = errors[0].get("detail") or errors[0].get("title")
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""
    return f": {str(text)[:200]}" if text else ""
