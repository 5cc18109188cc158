"""One error hierarchy for the project: each message says what failed and what to do."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # dlt's: imported where used, so the command line starts without dlt
    from dlt.common.configuration.exceptions import ConfigFieldMissingException, InvalidNativeValue


class ZapRunsError(Exception):
    """Base of every error the sync reports to its user; `exit_code` is what the CLI returns."""

    exit_code = 1


class ConfigError(ZapRunsError):
    """Bad configuration or arguments (exit 2)."""

    exit_code = 2


class SomeAccountsFailed(ZapRunsError):
    """A pass over many accounts loaded the others, but some failed, were skipped or are bad
    entries (exit 4). Raised by a plain dlt `pipeline.run(zap_runs_source(...))` once the load
    is done (accounts/failed_accounts.py): `failed` and `accounts` hold AccountOutcome (.account,
    .result, .error) of those and of every account, `load_info` what dlt loaded."""

    exit_code = 4

    def __init__(self, message: str, failed: list | None = None, accounts: list | None = None,
                 load_info: object = None) -> None:
        super().__init__(message)
        self.failed = failed or []
        self.accounts = accounts or []
        self.load_info = load_info


class ApiError(ZapRunsError):
    """The API answered with an error that retrying will not fix."""

    def __init__(self, message: str, status: int | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


def malformed_run(request: str, run_id: object, problem: object) -> ApiError:
    """A run that breaks the contract: the sync stops before committing anything."""
    return ApiError(f"{request} returned a malformed run {str(run_id)[:40]!r}: {problem}. "
                    "Nothing of this sync was committed and its cursor did not move; report "
                    "the run to Zapier.", url=request)


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


def line_of(text: str) -> str:
    """The first line of `text` that is not blank, stripped ("" when there is none)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first line, for one-line messages (its type when it says nothing)."""
    return (line_of(str(exc)) or type(exc).__name__)[:limit]


# The one message for a missing token, whoever finds it missing (the source, or dlt).
MISSING_TOKEN = ("missing configuration: access_token. Set it under [sources.zap_runs] in "
                 ".dlt/secrets.toml or as SOURCES__ZAP_RUNS__ACCESS_TOKEN (or configure refresh_token, "
                 "client_id and client_secret for OAuth refresh).")

# A connection string dlt accepts, for messages about one it rejected (never the user's value).
CONNECTION_EXAMPLES = {"postgres": "postgresql://postgres:x@127.0.0.1:5432/mydb"}


def missing_config(exc: ConfigFieldMissingException, destination: str) -> ConfigError:
    """dlt's missing-configuration error as one line that says which value to set, and how."""
    fields = ", ".join(exc.fields)
    if "access_token" in exc.fields:
        return ConfigError(MISSING_TOKEN)
    name = destination or "<name>"
    if "credentials" in exc.fields:
        given = _given_fields(exc, "credentials")
        where = _where(name, "credentials")
        if given:  # the value is there, but dlt found parts of it missing
            missing = " or ".join(_missing_fields(exc, "credentials")) or fields
            example = CONNECTION_EXAMPLES.get(destination)
            if missing == "password":
                fix = ": dlt requires one" + (f" (with trust auth any value works, e.g. {example})"
                                              if example else "")
            else:
                fix = f": write it as {example}" if example else ""
            return ConfigError(f"{where} is set but has no {missing}{fix}.")
        return ConfigError(f"missing credentials for {destination or 'the destination'}: set "
                           f"DESTINATION__{name.upper()}__CREDENTIALS or [destination.{name}] "
                           "credentials in .dlt/secrets.toml.")
    if "bucket_url" in exc.fields:
        return ConfigError(f"missing bucket_url for {name}: set DESTINATION__{name.upper()}__BUCKET_URL "
                           f"(e.g. file:///data/lake or s3://bucket/path) or [destination.{name}] "
                           "bucket_url in .dlt/config.toml.")
    return ConfigError(f"missing configuration: {fields} (see docs/reference.md, Configuration).")


def _given_fields(exc: ConfigFieldMissingException, field: str) -> list[str]:
    """Parts of an embedded configuration (e.g. credentials) that dlt did resolve."""
    from dlt.common.configuration.exceptions import LookupTraces

    return [name for trace in exc.traces.get(field, []) if isinstance(trace, LookupTraces)
            for name in trace.resolved_fields_set]


def _missing_fields(exc: ConfigFieldMissingException, field: str) -> list[str]:
    from dlt.common.configuration.exceptions import LookupTraces

    return [name for trace in exc.traces.get(field, []) if isinstance(trace, LookupTraces)
            for name in trace.traces]


def _where(destination: str, field: str) -> str:
    """Where the user set a destination value: the environment variable if it is set."""
    env = f"DESTINATION__{destination.upper()}__{field.upper()}"
    return env if env in os.environ else f"[destination.{destination}] {field}"


def invalid_value(exc: InvalidNativeValue, destination: str) -> ConfigError:
    """A configuration value dlt cannot parse (most often a connection string), never shown."""
    name = destination or "<name>"
    field = exc.embedded_sections[-1] if exc.embedded_sections else "credentials"
    example = CONNECTION_EXAMPLES.get(destination)
    form = f": write it as {example}" if example else f" ({exc.spec.__name__})"
    return ConfigError(f"{_where(name, field)} is not a value dlt can read{form}.")


def unwrap(exc: BaseException, destination: str = "") -> ZapRunsError:
    """The project's own error behind dlt's wrappers, or a one-line description of dlt's."""
    from dlt.common.configuration.exceptions import ConfigFieldMissingException, InvalidNativeValue

    seen = exc
    while seen is not None:
        if isinstance(seen, ZapRunsError):
            return seen
        if isinstance(seen, ConfigFieldMissingException):
            return missing_config(seen, destination)
        if isinstance(seen, InvalidNativeValue):
            return invalid_value(seen, destination)
        seen = getattr(seen, "exception", None) or seen.__cause__ or seen.__context__
    step = getattr(exc, "step", "run")
    inner = getattr(exc, "exception", exc)
    # A failed load job carries the destination's error, or (from an earlier process) only its
    # traceback's text.
    client_error = getattr(inner, "client_exception", None)
    cause = (first_line(client_error) if client_error is not None else None) \
        or _traceback_message(getattr(inner, "failed_message", None)) or first_line(inner)
    fix = "fix the cause"
    if destination == "duckdb" and "Out of Memory Error" in cause:
        fix = "raise duckdb_memory_limit under [sources.zap_runs] (or SOURCES__ZAP_RUNS__DUCKDB_MEMORY_LIMIT)"
    if step == "load":  # the extracted runs wait in the pipeline folder, the cursor unmoved
        after = (f"the cursor did not move; {fix} and run again: the next sync aborts this "
                 "load and reads its runs again.")
    else:
        after = f"nothing of this sync was committed; {fix} and run again (it resumes from its cursor)."
    return ZapRunsError(f"the {step} step failed: {cause[:300]}. {after[0].upper()}{after[1:]}")


def _traceback_message(text: object) -> str | None:
    """The message of the last exception a traceback's text names ("pkg.SomeError: message")."""
    found = re.findall(r"^[A-Za-z_][\w.]*(?:Error|Exception)\w*: (.+)$", str(text or ""), re.M)
    return found[-1].strip() if found else None
