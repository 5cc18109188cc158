"""The local Partner API: GET /v2/zap-runs and POST /oauth/token/ over real HTTP on 127.0.0.1.

It serves one account (`Simulator(world)`: `sim.world`, `sim.token`) or many, one World per
account, the bearer token choosing which (`Simulator.many`, `add_account`).
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from . import params as P
from .accounts import DEFAULT_ACCOUNT, Account, make_mix
from .auth import FOREVER, SCOPE, TokenStore
from .clock import ManualClock, RealClock, timers
from .eviction import DEFAULT_WORLD_MEMORY_MB, WorldLRU
from .faults import Faults
from .ratelimit import RateLimiter
from .world import Query, World, WorldConfig

DEFAULT_WINDOW = timedelta(days=30)  # without from_date the API returns the last 30 days
PARTNER = "partner"  # the partner limiter's one key: every account's requests count together


def error_body(status: int, code: str, title: str, detail: str, parameter: str | None = None) -> dict:
    """The contract's ErrorResponse."""
    return {"errors": [{
        "status": status, "code": code, "title": title, "detail": detail,
        "source": {"parameter": parameter} if parameter else None,
        "meta": {"source": "ZAPIER", "full_details": {"message": detail, "code": code}},
    }]}


class Simulator:
    """Accounts (a World and tokens each) + rate limiters + faults behind a threaded HTTP server.

    `Simulator(world)` (or `config=`) serves one account, "default": `sim.world`, `sim.token`.
    With `accounts=` (name, WorldConfig or World) pairs and no world or config, it serves those
    accounts only; `add_account` adds more at any time. Rate limits: `rate_limit` requests per
    `rate_window` per client IP, shared by all accounts, and, while that is on, `partner_limit`
    per window over every request of every account (Zapier: 60/min per IP, 150/min per
    partner); either, once exceeded, refuses for `cooldown` seconds.

    Worlds built from a WorldConfig are evicted when idle once the built ones' estimated memory
    passes `world_memory_mb` (least recently asked for first; None: never), and built again, the
    same, on their next request (`sim.worlds`, eviction.WorldLRU). On a VirtualClock
    (`clock=`), the rate rule and the times in headers follow it too.
    """

    def __init__(self, world: World | None = None, *, faults: Faults | None = None,
                 rate_limit: int | None = 60, rate_window: float = 60.0, cooldown: float = 60.0,
                 access_ttl: timedelta | None = None, host: str = "127.0.0.1", port: int = 0,
                 clock: RealClock | ManualClock | None = None, config: WorldConfig | None = None,
                 fault_seed: int = 1, partner_limit: int | None = 150,
                 accounts: Iterable[tuple[str, WorldConfig | World]] | None = None,
                 world_memory_mb: float | None = DEFAULT_WORLD_MEMORY_MB) -> None:
        self.clock = clock or (world.clock if world else RealClock())
        # Seconds for the rate rule and the request log, and the epoch time headers state.
        self.monotonic, self.time = timers(self.clock)
        self.faults = faults or Faults()
        self.faults.validate()
        self.limiter = RateLimiter(rate_limit, rate_window, cooldown, self.monotonic)
        self.partner_limiter = RateLimiter(partner_limit, rate_window, cooldown, self.monotonic) \
            if rate_limit is not None and partner_limit is not None else None
        self.tokens = TokenStore(self.clock, access_ttl)
        self.worlds = WorldLRU(world_memory_mb)
        self.accounts: dict[str, Account] = {}
        self._accounts_lock = threading.Lock()
        if accounts is None or world is not None or config is not None:
            # The one account of old, built now as it always was: a long-lived token for people
            # and tests.
            self.add_account(DEFAULT_ACCOUNT, world or World(config, self.clock))
        for name, world_or_config in accounts or ():
            self.add_account(name, world_or_config)
        self.requests: list[dict] = []
        # Called with the request record before each GET is answered: tests move time here.
        self.on_request: Callable[[dict], None] | None = None
        self._rng = random.Random(fault_seed)
        self._rng_lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.simulator = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self._serving = False

    @classmethod
    def many(cls, n: int, *, seed: int = 1, overrides: dict[str, object] | None = None,
             mix: str = "default", **kwargs: object) -> Simulator:
        """A simulator of n accounts from the mix named `mix` (account_mix, or heavy_mix for
        "heavy") of seed `seed` with `overrides`: acct-0001, ...; `kwargs` go to Simulator
        (rate_limit, clock, faults, world_memory_mb, ...)."""
        return cls(accounts=make_mix(mix, n, seed, **(overrides or {})), **kwargs)

    # --- accounts ----------------------------------------------------------------------------
    def add_account(self, name: str, world_or_config: World | WorldConfig | None = None, *,
                    scopes: tuple[str, ...] = (SCOPE,)) -> Account:
        """A new account served from now on, with an access token that never expires. A World
        is served as it is (and never evicted); a WorldConfig (None: the default one) becomes a
        World on the account's first request, on this simulator's clock, evicted when idle."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"an account needs a name (a non-empty string), not {name!r}")
        if isinstance(world_or_config, World):
            world, config = world_or_config, world_or_config.config
            clock = world.clock
        else:
            world, config, clock = None, world_or_config or WorldConfig(), self.clock
        with self._accounts_lock:
            if name in self.accounts:
                raise ValueError(f"there is already an account named {name!r}")
            token = self.tokens.issue_access(scopes, ttl=FOREVER, account=name)
            account = Account(name, config, clock, token, tuple(scopes), world, lru=self.worlds)
            self.accounts[name] = account
        return account

    def issue_refresh(self, name: str) -> str:
        """A refresh token of account `name` (its scopes); the grant rotates it at each use."""
        return self.tokens.issue_refresh(self._account(name).scopes, name)

    def issue_access(self, name: str, *, scopes: tuple[str, ...] | None = None,
                     ttl: timedelta | None = None) -> str:
        """Another access token of account `name` (its scopes unless given; ttl None: never
        expires)."""
        account = self._account(name)
        return self.tokens.issue_access(account.scopes if scopes is None else scopes,
                                        ttl=FOREVER if ttl is None else ttl,
                                        account=name)

    def revoke(self, name: str) -> int:
        """Every access and refresh token of account `name` issued so far stops working: its
        requests get 401 and its refresh tokens invalid_grant. Returns how many were revoked."""
        self._account(name)
        return self.tokens.revoke(name)

    def _account(self, name: str) -> Account:
        try:
            return self.accounts[name]
        except KeyError:
            raise KeyError(f"no account named {name!r}") from None

    def _single(self) -> Account:
        account = self.accounts.get(DEFAULT_ACCOUNT)
        if account is None:
            raise AttributeError("this simulator serves named accounts only (Simulator.many or "
                                 "accounts=): use sim.accounts[name].world and .token")
        return account

    @property
    def world(self) -> World:
        """The world of the one account of Simulator(world) ("default")."""
        return self._single().world

    @property
    def token(self) -> str:
        """The long-lived access token of the one account of Simulator(world) ("default")."""
        return self._single().token

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Simulator:
        self._serving = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="zapier-simulator",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._serving:  # shutdown() waits for a serve loop: never started, it would wait forever
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self._serving = True
        self._httpd.serve_forever(poll_interval=0.2)

    def chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._rng_lock:
            return self._rng.random() < rate

    def randint(self, a: int, b: int) -> int:
        with self._rng_lock:
            return self._rng.randint(a, b)

    def zap_run_requests(self, account: str | None = None) -> list[dict]:
        """The GET /v2/zap-runs records, of every account or of the one named."""
        return [r for r in self.requests if r["path"] == "/v2/zap-runs"
                and (account is None or r["account"] == account)]


def _corrupt(run: dict, how: str) -> bytes:
    """A run that breaks the contract in one way."""
    run = dict(run)
    if how == "missing_id":
        del run["id"]
    elif how == "bad_zap_id":
        run["zap_id"] = "not-a-number"
    elif how == "bad_time":
        run["start_time"] = "yesterday at noon"
    elif how == "not_a_list":
        run["steps"] = "success"
    return json.dumps(run).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment: without these, Nagle's algorithm and delayed
    # ACKs stall every small keep-alive response by ~40 ms.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16
    server_version = "ZapierPartnerAPISimulator/1.0"

    @property
    def sim(self) -> Simulator:
        return self.server.simulator  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # the request log lives in Simulator.requests

    # --- plumbing --------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None, declared_length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(declared_length if declared_length is not None
                                               else len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self._record["status"] = status

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _retry_after(self, seconds: float) -> dict[str, str]:
        fmt = self.sim.faults.retry_after_format
        if fmt == "none":
            return {}
        if fmt == "http-date":
            when = datetime.fromtimestamp(self.sim.time(), UTC) + timedelta(seconds=math.ceil(seconds))
            return {"Retry-After": email.utils.format_datetime(when, usegmt=True)}
        return {"Retry-After": str(max(0, math.ceil(seconds)))}

    def _rate_headers(self, remaining: int, reset_in: float) -> dict[str, str]:
        """On every zap-runs answer while limiting is on; none at all when it is off (no limit
        to state: a Limit of 0 or a made-up Remaining would tell a client something false)."""
        limit = self.sim.limiter.limit
        if limit is None:
            return {}
        return {"X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(max(0, remaining)),
                "X-RateLimit-Reset": str(int(self.sim.time() + max(0.0, reset_in)))}

    def _bearer(self) -> str:
        auth = self.headers.get("Authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else ""

    def _begin(self, account: str | None = None) -> tuple[str, dict[str, list[str]]]:
        """Log the request; `account`: the one its token belongs to (None: no known token)."""
        parts = urlsplit(self.path)
        self._record = {"method": self.command, "path": parts.path, "query": parts.query,
                        "status": None, "at": self.sim.monotonic(), "account": account,
                        "client": self.client_address[0]}
        self.sim.requests.append(self._record)
        return parts.path, parse_qs(parts.query, keep_blank_values=True)

    # --- routes ----------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        path, _ = self._begin(self.sim.tokens.refresh_account(form.get("refresh_token", "")))
        if path.rstrip("/") != "/oauth/token":
            self._json(404, error_body(404, "not_found", "NotFound", f"No route for POST {path}."))
            return
        status, body = self.sim.tokens.refresh(form)
        self._json(status, body)

    def do_GET(self) -> None:  # noqa: N802
        token = self._bearer()
        path, query = self._begin(self.sim.tokens.account_of(token) if token else None)
        if path.rstrip("/") != "/v2/zap-runs":
            self._json(404, error_body(404, "not_found", "NotFound", f"No route for GET {path}."))
            return
        sim, faults = self.sim, self.sim.faults
        if sim.on_request is not None:
            sim.on_request(self._record)
        if faults.slow_seconds:
            time.sleep(faults.slow_seconds)
        allowed, remaining, reset_in = sim.limiter.check(self.client_address[0])
        rate = self._rate_headers(remaining, reset_in)
        if not allowed:
            self._json(429, error_body(429, "throttled", "Throttled",
                                       "Request was throttled. Retry after the cooldown."),
                       headers={**rate, **self._retry_after(reset_in)})
            return
        if sim.partner_limiter is not None:
            # The X-RateLimit-* headers keep stating this client's own window; Retry-After says
            # when the partner's allows a request again.
            allowed, _, partner_reset = sim.partner_limiter.check(PARTNER)
            if not allowed:
                self._json(429, error_body(429, "throttled", "Throttled",
                                           "Request was throttled: the partner's requests per "
                                           "minute, over all its accounts, are used up. Retry "
                                           "after the cooldown."),
                           headers={**rate, **self._retry_after(partner_reset)})
                return
        if faults.script:
            scripted = faults.script.pop(0)
            if scripted != 200:
                self._fault(scripted, rate)
                return
        verdict = sim.tokens.check(token) if token else "invalid"
        account = sim.accounts.get(self._record["account"] or "")
        if verdict == "invalid" or account is None:
            self._json(401, error_body(401, "not_authenticated", "NotAuthenticated",
                                       "Authentication credentials were not provided or are invalid."),
                       headers=rate)
            return
        if verdict == "scope":
            self._json(403, error_body(403, "permission_denied", "PermissionDenied",
                                       "The token does not have the zap:runs scope."), headers=rate)
            return
        for status, rate_of in ((500, faults.error_rate), (503, faults.unavailable_rate),
                                (502, faults.html_error_rate)):
            if sim.chance(rate_of):
                self._fault(status, rate)
                return
        if sim.chance(faults.timeout_rate):
            time.sleep(faults.hang_seconds)
        try:
            args = P.parse(query)
        except P.BadParameter as bad:
            self._json(400, error_body(400, "parse_error", "ParseError", bad.detail, bad.parameter),
                       headers=rate)
            return
        self._page(account.world, args, query, rate)

    def _fault(self, status: int, rate: dict[str, str]) -> None:
        if status == 429 or status == 503:
            self._json(status, error_body(status, "unavailable" if status == 503 else "throttled",
                                          "ServiceUnavailable" if status == 503 else "Throttled",
                                          "Try again later."),
                       headers={**rate, **self._retry_after(self.sim.faults.fault_retry_after)})
        elif status == 502:
            page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1></body></html>"
            self._send(502, page, "text/html; charset=utf-8", rate)
        else:
            self._json(status, error_body(status, "error", "APIException", "A server error occurred."),
                       headers=rate)

    def _page(self, world: World, args: dict, query: dict[str, list[str]],
              rate: dict[str, str]) -> None:
        sim, faults = self.sim, self.sim.faults
        world.advance_to_clock()
        from_date = args["from_date"] or (world.clock.now() - DEFAULT_WINDOW)
        wanted = Query(from_date, args["to_date"], args["zap_id"], args["statuses"],
                       args["search"], faults.order)
        limit = args["limit"] if faults.max_limit is None else min(args["limit"], faults.max_limit)
        offset = args["offset"]
        start = offset
        if offset > 0 and sim.chance(faults.overlap_rate):
            start = max(0, offset - sim.randint(1, 5))
        total, page = world.page(wanted, start, limit)
        if page and len(page) > 1 and sim.chance(faults.short_page_rate):
            page = page[: sim.randint(1, len(page) - 1)]
        count = total + faults.inflate_count
        more = offset + len(page) < count
        links = {"next": self._link(query, offset + len(page), limit) if more else None,
                 "prev": self._link(query, max(0, offset - limit), limit) if offset > 0 else None}
        if more and sim.chance(faults.drop_next_rate):
            links["next"] = None
        items = [run.encoded() for run in page]
        if items and sim.chance(faults.corrupt_rate):
            items[0] = _corrupt(page[0].payload(), faults.corruption)
        body = b"".join([b'{"links":', json.dumps(links).encode(), b',"meta":',
                         json.dumps({"count": count, "limit": limit, "offset": offset}).encode(),
                         b',"data":[', b",".join(items), b"]}"])
        if faults.body_shape == "array":
            body = b"[" + body + b"]"
        if sim.chance(faults.truncate_rate):
            body = body[: max(1, len(body) // 2)]
        self._send(200, body, headers=rate)

    def _link(self, query: dict[str, list[str]], offset: int, limit: int) -> str:
        params = {k: v[-1] for k, v in query.items() if v}
        params.update(offset=str(offset), limit=str(limit))
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        return f"http://{host}/v2/zap-runs?{urlencode(params)}"
