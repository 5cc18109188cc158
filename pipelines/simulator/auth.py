"""Bearer tokens and the OAuth refresh_token grant with rotation, as Zapier's token endpoint.

Every token belongs to one account (a name): the account's world answers its requests, and a
refresh grant hands out tokens of the same account.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from .clock import ManualClock, RealClock

SCOPE = "zap:runs"
# A token's ttl for "never expires" (None stands for the store's access_ttl).
FOREVER = timedelta.max
DEFAULT_ACCOUNT = "default"


@dataclass
class AccessToken:
    scopes: frozenset[str]
    expires_at: datetime | None
    account: str = DEFAULT_ACCOUNT


@dataclass(frozen=True)
class RefreshToken:
    scopes: frozenset[str]
    account: str = DEFAULT_ACCOUNT


class TokenStore:
    """Valid access and refresh tokens; a refresh token works once, then it is rotated out."""

    def __init__(self, clock: RealClock | ManualClock, access_ttl: timedelta | None = None,
                 client_id: str = "sim-client", client_secret: str = "sim-secret") -> None:
        self.clock = clock
        self.access_ttl = access_ttl
        self.client_id = client_id
        self.client_secret = client_secret
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._lock = threading.Lock()
        self.refreshes = 0

    def issue_access(self, scopes: tuple[str, ...] = (SCOPE,), token: str | None = None,
                     ttl: timedelta | None = None, account: str = DEFAULT_ACCOUNT) -> str:
        token = token or "sim-at-" + secrets.token_urlsafe(24)
        ttl = ttl if ttl is not None else self.access_ttl
        expires = None if ttl is None or ttl == FOREVER else self.clock.now() + ttl
        with self._lock:
            self._access[token] = AccessToken(frozenset(scopes), expires, account)
        return token

    def issue_refresh(self, scopes: tuple[str, ...] = (SCOPE,), account: str = DEFAULT_ACCOUNT) -> str:
        token = "sim-rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh[token] = RefreshToken(frozenset(scopes), account)
        return token

    def account_of(self, token: str) -> str | None:
        """The account an access token was issued for (expired or not), None if unknown."""
        with self._lock:
            found = self._access.get(token)
        return None if found is None else found.account

    def refresh_account(self, token: str) -> str | None:
        """The account a refresh token was issued for, None if unknown or used up."""
        with self._lock:
            found = self._refresh.get(token)
        return None if found is None else found.account

    def revoke(self, account: str) -> int:
        """Every access and refresh token of `account` stops working; tokens issued later work.
        Returns how many were revoked."""
        with self._lock:
            access = [t for t, found in self._access.items() if found.account == account]
            refresh = [t for t, found in self._refresh.items() if found.account == account]
            for token in access:
                del self._access[token]
            for token in refresh:
                del self._refresh[token]
        return len(access) + len(refresh)

    def check(self, token: str) -> str:
        """'ok', 'invalid' (unknown or expired) or 'scope' (valid but lacks zap:runs)."""
        with self._lock:
            found = self._access.get(token)
        if found is None:
            return "invalid"
        if found.expires_at is not None and self.clock.now() >= found.expires_at:
            return "invalid"
        return "ok" if SCOPE in found.scopes else "scope"

    def refresh(self, form: dict[str, str]) -> tuple[int, dict]:
        """The refresh_token grant: a new access token and a new refresh token, old one dead."""
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client"}
        with self._lock:
            found = self._refresh.pop(form.get("refresh_token", ""), None)
        if found is None:
            return 400, {"error": "invalid_grant", "error_description": "refresh token is invalid"}
        self.refreshes += 1
        scopes = tuple(found.scopes)
        access = self.issue_access(scopes, account=found.account)
        body = {"access_token": access, "token_type": "Bearer",
                "refresh_token": self.issue_refresh(scopes, found.account),
                "scope": " ".join(sorted(scopes))}
        if self.access_ttl is not None:
            body["expires_in"] = int(self.access_ttl.total_seconds())
        return 200, body
