"""Access tokens: a fixed one, or refreshed with Zapier's rotating refresh tokens, kept on disk."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from ..common.clock import utcnow
from ..common.errors import MISSING_TOKEN, AuthError, ConfigError

log = logging.getLogger(__name__)

DEFAULT_TOKEN_URL = "https://zapier.com/oauth/token/"
DEFAULT_STORE = ".dlt/zapier_tokens.json"
REFRESH_EARLY = timedelta(seconds=60)  # refresh this long before the access token expires

# Called after each rotation, once the new tokens are safely in the store:
# (account name, refresh token, access token, expires_at or None). An app that embeds the source
# writes them back to its own store with it.
OnRotate = Callable[[str, str, str, datetime | None], None]


class StaticToken:
    """A plain access token from the configuration; nothing to refresh."""

    def __init__(self, token: str) -> None:
        self._token = token

    def current(self) -> str:
        return self._token

    def on_unauthorized(self, rejected: str) -> str | None:
        return None

    def close(self) -> None:
        pass


class RefreshingToken:
    """Gets access tokens with the refresh_token grant and stores each rotated refresh token.

    Zapier may invalidate a refresh token once used, so the new one is written to `store` the
    moment it arrives: to a temporary file (owner-only, fsynced), then renamed over the old
    store. A crash before the rename leaves the complete temporary file, which the next start
    adopts; a crash before it was complete leaves the old store untouched. The only window left
    is the network's: a response lost in flight.
    """

    def __init__(self, refresh_token: str, client_id: str, client_secret: str,
                 token_url: str = DEFAULT_TOKEN_URL, store: str | Path = DEFAULT_STORE,
                 access_token: str | None = None, timeout: float = 30.0,
                 clock=utcnow, account: str = "default",
                 on_rotate: OnRotate | None = None) -> None:
        self._clock = clock
        self.account = account
        self._on_rotate = on_rotate
        self.token_url = token_url
        self.store = Path(store)
        self._client_id, self._client_secret = client_id, client_secret
        self._configured_refresh = refresh_token
        self._refresh = refresh_token
        self._access = access_token
        self._expires_at: datetime | None = None
        self._early = REFRESH_EARLY
        self._lock = threading.Lock()
        # Made on the first refresh: building an httpx client costs ~20 ms (its TLS context),
        # and most accounts of a pass hold a fresh access token.
        self._timeout = timeout
        self._http: httpx.Client | None = None
        self._load()

    def close(self) -> None:
        """Let go of the token endpoint's connections (a pass over many accounts makes one
        RefreshingToken each)."""
        if self._http is not None:
            self._http.close()

    # --- the store --------------------------------------------------------------------------
    def _tmp(self) -> Path:
        return self.store.with_name(self.store.name + ".tmp")

    def _load(self) -> None:
        tmp = self._tmp()
        if tmp.exists():
            try:
                json.loads(tmp.read_text())
                os.replace(tmp, self.store)  # a complete write whose rename a crash cut off
            except (ValueError, OSError):
                tmp.unlink(missing_ok=True)
        if not self.store.exists():
            return
        try:
            saved = json.loads(self.store.read_text())
        except (ValueError, OSError) as exc:
            raise ConfigError(f"the token store {self.store} is unreadable ({type(exc).__name__}); "
                              "delete it to start again from the configured refresh_token.") from None
        self._refresh = saved.get("refresh_token") or self._refresh
        self._access = saved.get("access_token")
        expires = saved.get("expires_at")
        self._expires_at = datetime.fromisoformat(expires) if expires else None

    def _save(self) -> None:
        # Owner-only: the folder lists which accounts exist, the files hold their tokens.
        self.store.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self._tmp()
        tmp.unlink(missing_ok=True)
        body = json.dumps({"refresh_token": self._refresh, "access_token": self._access,
                           "expires_at": self._expires_at.isoformat() if self._expires_at else None,
                           "saved_at": self._clock().isoformat()})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.store)
        dir_fd = os.open(self.store.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # --- tokens -----------------------------------------------------------------------------
    def current(self) -> str:
        with self._lock:
            fresh = self._access and (self._expires_at is None or
                                      self._clock() < self._expires_at - self._early)
            if not fresh:
                self._refresh_now()
            return self._access

    def on_unauthorized(self, rejected: str) -> str | None:
        """A 401: refresh once (unless another request already did) and hand out the new token."""
        with self._lock:
            if self._access == rejected:
                self._refresh_now()
            return self._access

    def _refresh_now(self) -> None:
        tried = [self._refresh]
        if self._configured_refresh not in tried:
            tried.append(self._configured_refresh)  # the user may have put in a new one
        for refresh in tried:
            try:
                if self._http is None:
                    self._http = httpx.Client(timeout=self._timeout)
                response = self._http.post(self.token_url, data={
                    "grant_type": "refresh_token", "refresh_token": refresh,
                    "client_id": self._client_id, "client_secret": self._client_secret})
            except httpx.HTTPError as exc:
                raise AuthError(f"cannot reach the token endpoint {self.token_url} "
                                f"({type(exc).__name__}); check token_url and the network.") from None
            if response.status_code == 200:
                self._accept(response)
                return
            error = _oauth_error(response)
            if error != "invalid_grant":
                break
        raise AuthError(f"the token endpoint refused to refresh the access token ({response.status_code}"
                        f" {error}). Check client_id and client_secret, or authorise again and put the "
                        "new refresh_token under [sources.zap_runs] in .dlt/secrets.toml.",
                        response.status_code, self.token_url)

    def _accept(self, response: httpx.Response) -> None:
        try:
            body = response.json()
            access = body["access_token"]
        except (ValueError, KeyError, TypeError):
            raise AuthError(f"the token endpoint {self.token_url} answered without an "
                            "access_token.") from None
        self._access = access
        self._refresh = body.get("refresh_token") or self._refresh
        expires_in = body.get("expires_in")
        self._expires_at = (self._clock() + timedelta(seconds=float(expires_in))
                            if expires_in else None)
        if expires_in:  # short-lived tokens: refresh in the last tenth of their life
            self._early = min(REFRESH_EARLY, timedelta(seconds=float(expires_in) / 10))
        self._save()  # first thing: the old refresh token may already be dead
        log.info("refreshed the access token; the rotated refresh token is saved in %s", self.store)
        if self._on_rotate is not None:
            try:
                self._on_rotate(self.account, self._refresh, access, self._expires_at)
            except Exception as exc:  # noqa: BLE001 - the store has it; the app's copy is late
                log.warning("account %s: the on_token_rotated callback failed (%s); the rotated "
                            "refresh token is in %s", self.account, type(exc).__name__, self.store)


def _oauth_error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error") or "")[:60]
    except (ValueError, AttributeError):
        return ""


def account_store(store: str, account: str) -> Path:
    """Where an account of many keeps its rotated refresh token: `.dlt/zapier_tokens.json`
    becomes `.dlt/zapier_tokens/<account>.json` (names are plain: accounts.NAME)."""
    path = Path(store)
    return path.with_suffix("") / f"{account}.json"


def token_source(access_token: str | None, refresh_token: str | None, client_id: str | None,
                 client_secret: str | None, token_url: str, store: str | Path, timeout: float,
                 account: str = "default", on_rotate: OnRotate | None = None
                 ) -> StaticToken | RefreshingToken:
    """OAuth refresh when a refresh_token is configured, else the plain access_token."""
    if refresh_token and refresh_token.strip():
        if not (client_id and client_secret):
            raise ConfigError("refresh_token needs client_id and client_secret too: set all three "
                              "under [sources.zap_runs] in .dlt/secrets.toml.")
        return RefreshingToken(refresh_token.strip(), client_id.strip(), client_secret.strip(),
                               token_url, store, access_token or None, timeout,
                               account=account, on_rotate=on_rotate)
    if not access_token or not access_token.strip():
        raise ConfigError(MISSING_TOKEN)
    return StaticToken(access_token.strip())
