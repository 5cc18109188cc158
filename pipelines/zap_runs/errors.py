"""One error hierarchy for the project: each message says what failed and what to do."""

from __future__ import annotations


class ZapRunsError(Exception):
    """Base of every error the sync reports to its user; `exit_code` is what the CLI returns."""

    exit_code = 1


class ConfigError(ZapRunsError):
    """Bad configuration or arguments (exit 2)."""

    exit_code = 2


class ApiError(ZapRunsError):
    """The API answered with an error that retrying will not fix."""

    def __init__(self, message: str, status: int | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class AuthError(ApiError):
    """401: the token is missing, wrong or expired (a configuration problem: exit 2)."""

    exit_code = 2


class ScopeError(ApiError):
    """403: the token lacks the zap:runs scope (a configuration problem: exit 2)."""

    exit_code = 2


class BadRequestError(ApiError):
    """400: the API refused the request's parameters."""


class RetriesExhausted(ApiError):
    """Transient failures (5xx, 429, timeouts, bad bodies) outlasted the retry budget."""


class UnreachableError(ApiError):
    """No HTTP answer at all: DNS, refused connection, TLS."""
