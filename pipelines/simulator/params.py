"""Validation of GET /v2/zap-runs query parameters, as the contract documents them."""

from __future__ import annotations

from datetime import UTC, datetime

STATUSES = frozenset({"delayed", "scheduled", "pending", "error", "error_handled", "halted",
                      "throttled", "held", "filtered", "skipped", "success"})
SEARCH_MAX = 150
DEFAULT_LIMIT = 10


class BadParameter(Exception):
    """A query parameter the API would answer 400 for."""

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(detail)
        self.parameter = parameter
        self.detail = detail


def parse_datetime(name: str, raw: str) -> datetime:
    """An aware UTC datetime, or BadParameter naming `name` (malformed or out of range)."""
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise BadParameter(name, f"{name} must be an ISO 8601 date-time, got {raw!r}.") from None
    try:
        # Year 9999 with a negative offset (or year 1 with a positive one) is past UTC's range.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise BadParameter(name, f"{name} is out of range: {raw!r} is not between "
                                 "0001-01-01 and 9999-12-31 in UTC.") from None


def parse_int(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, f"{name} must be an integer, got {raw!r}.") from None
    if value < minimum:
        raise BadParameter(name, f"{name} must be at least {minimum}, got {value}.")
    return value


def parse(query: dict[str, list[str]]) -> dict:
    """The validated parameters; the last value wins when one is repeated."""
    one = {k: v[-1] for k, v in query.items() if v}
    out: dict = {
        "from_date": parse_datetime("from_date", one["from_date"]) if "from_date" in one else None,
        "to_date": parse_datetime("to_date", one["to_date"]) if "to_date" in one else None,
        "limit": parse_int("limit", one["limit"], 1) if "limit" in one else DEFAULT_LIMIT,
        "offset": parse_int("offset", one["offset"], 0) if "offset" in one else 0,
        "zap_id": parse_int("zap_id", one["zap_id"], 0) if "zap_id" in one else None,
        "search": one.get("search") or None,
        "statuses": None,
    }
    if out["search"] is not None and len(out["search"]) > SEARCH_MAX:
        raise BadParameter("search", f"search must be at most {SEARCH_MAX} characters.")
    if "statuses" in one:
        wanted = frozenset(s.strip() for s in one["statuses"].split(",") if s.strip())
        unknown = sorted(wanted - STATUSES)
        if unknown or not wanted:
            raise BadParameter("statuses", f"unknown status value(s): {', '.join(unknown) or '(empty)'}.")
        out["statuses"] = wanted
    return out
