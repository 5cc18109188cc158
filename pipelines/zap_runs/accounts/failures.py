"""How an account of many failed: refused (skipped until its credentials change) or failing
(tried again next pass), and the one line that says where to fix it."""

from __future__ import annotations

from ..common.errors import AuthError, ScopeError, ZapRunsError, first_line
from .entries import Account


def refused(exc: Exception) -> bool:
    """Whether the account's credentials were refused (its token revoked, a scope missing, the
    token endpoint saying invalid_grant or invalid_client), as opposed to failing requests (a
    network error, a 5xx or 429 of the token endpoint), which are tried again next pass."""
    if isinstance(exc, ScopeError):
        return True
    return isinstance(exc, AuthError) and getattr(exc, "status", None) in (400, 401, 403)


def from_api(exc: Exception) -> bool:
    """An answer of the zap-runs endpoint (its errors name the request), not the token one."""
    return str(getattr(exc, "url", "") or "").startswith("GET ")


def account_error(account: Account, exc: Exception) -> str:
    """What failed for one account, in one line that says where to fix it."""
    where = account.where or f"account {account.name}"
    if isinstance(exc, ScopeError):
        return (f"the token lacks the zap:runs scope (403): have the user re-authorise with "
                f"zap:runs and update {where}")
    if isinstance(exc, AuthError) and from_api(exc):
        return f"the Zapier API refused the token (401, revoked or expired): update {where}"
    if isinstance(exc, AuthError) and refused(exc):  # the token endpoint refused it
        return f"{first_line(exc, 200)} (account {account.name}: update {where})"
    if not isinstance(exc, ZapRunsError):
        return f"unexpected {type(exc).__name__}: {first_line(exc, 300)}"
    return first_line(exc, 500)
