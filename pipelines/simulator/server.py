"""The local Partner API: GET /v2/zap-runs and POST /oauth/token/ over real HTTP on 127.0.0.1."""

from __future__ import annotations

import email.utils
import json
import math
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from . import params as P
from .auth import TokenStore
from .clock import ManualClock, RealClock
from .faults import Faults
from .ratelimit import RateLimiter
from .world import Query, World, WorldConfig

DEFAULT_WINDOW = timedelta(days=30)  # without from_date the API returns the last 30 days


def error_body(status: int, code: str, title: str, detail: str, parameter: str | None = None) -> dict:
    """The contract's ErrorResponse."""
    return {"errors": [{
        "status": status, "code": code, "title": title, "detail": detail,
        "source": {"parameter": parameter} if parameter else None,
        "meta": {"source": "ZAPIER", "full_details": {"message": detail, "code": code}},
    }]}


class Simulator:
    """World + tokens + rate limiter + faults behind a threaded HTTP server."""

    def __init__(self, world: World | None = None, *, faults: Faults | None = None,
                 rate_limit: int | None = 60, rate_window: float = 60.0, cooldown: float = 60.0,
                 access_ttl: timedelta | None = None, host: str = "127.0.0.1", port: int = 0,
                 clock: RealClock | ManualClock | None = None, config: WorldConfig | None = None,
                 fault_seed: int = 1) -> None:
        clock = clock or (world.clock if world else RealClock())
        self.world = world or World(config, clock)
        self.faults = faults or Faults()
        self.faults.validate()
        self.limiter = RateLimiter(rate_limit, rate_window, cooldown)
        self.tokens = TokenStore(self.world.clock, access_ttl)
        self.token = self.tokens.issue_access(ttl=None)  # a long-lived token for people and tests
        self.requests: list[dict] = []
        # Called with the request record before each GET is answered: tests move time here.
        self.on_request: Callable[[dict], None] | None = None
        self._rng = random.Random(fault_seed)
        self._rng_lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.simulator = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Simulator:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="zapier-simulator",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.2)

    def chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._rng_lock:
            return self._rng.random() < rate

    def randint(self, a: int, b: int) -> int:
        with self._rng_lock:
            return self._rng.randint(a, b)

    def zap_run_requests(self) -> list[dict]:
        return [r for r in self.requests if r["path"] == "/v2/zap-runs"]


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
            when = datetime.now(UTC) + timedelta(seconds=math.ceil(seconds))
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
                "X-RateLimit-Reset": str(int(time.time() + max(0.0, reset_in)))}

    def _begin(self) -> tuple[str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        self._record = {"method": self.command, "path": parts.path, "query": parts.query,
                        "status": None, "at": time.monotonic()}
        self.sim.requests.append(self._record)
        return parts.path, parse_qs(parts.query, keep_blank_values=True)

    # --- routes ----------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802
        path, _ = self._begin()
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if path.rstrip("/") != "/oauth/token":
            self._json(404, error_body(404, "not_found", "NotFound", f"No route for POST {path}."))
            return
        status, body = self.sim.tokens.refresh(form)
        self._json(status, body)

    def do_GET(self) -> None:  # noqa: N802
        path, query = self._begin()
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
        if faults.script:
            scripted = faults.script.pop(0)
            if scripted != 200:
                self._fault(scripted, rate)
                return
        auth = self.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        verdict = sim.tokens.check(token) if token else "invalid"
        if verdict == "invalid":
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
        self._page(args, query, rate)

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

    def _page(self, args: dict, query: dict[str, list[str]], rate: dict[str, str]) -> None:
        sim, faults = self.sim, self.sim.faults
        world = sim.world
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
