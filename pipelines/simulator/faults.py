"""Knobs for the ways a real API misbehaves; every default is a well-behaved server."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Faults:
    """What the simulator does wrong, and how often. Rates are probabilities per request."""

    body_shape: str = "array"  # "array" (the contract's shape) or "object" (what clients see)
    max_limit: int | None = None  # silently cap `limit`; meta.limit then says what was used
    order: str = "desc"  # "desc", "asc" or "shuffled" by start time: the order is undocumented
    error_rate: float = 0.0  # share of requests answered 500 (JSON ErrorResponse)
    unavailable_rate: float = 0.0  # share answered 503 with Retry-After
    html_error_rate: float = 0.0  # share answered 502 with an HTML page, as proxies do
    truncate_rate: float = 0.0  # share whose 200 body is cut off half way
    timeout_rate: float = 0.0  # share that hang for `hang_seconds` before answering
    hang_seconds: float = 5.0
    slow_seconds: float = 0.0  # added to every response
    short_page_rate: float = 0.0  # share of pages that return fewer items than asked
    drop_next_rate: float = 0.0  # share of pages whose links.next is null though more remain
    corrupt_rate: float = 0.0  # share of pages with a broken run (see `corruption`)
    corruption: str = "missing_id"  # "missing_id", "bad_zap_id", "bad_time" or "not_a_list"
    overlap_rate: float = 0.0  # share of pages that start a few runs early (duplicates)
    inflate_count: int = 0  # meta.count claims this many more runs than exist
    retry_after_format: str = "seconds"  # "seconds", "http-date" or "none"
    fault_retry_after: float = 2.0  # seconds a scripted or injected 429/503 asks the client to wait
    # Status codes to answer on the next requests, in order (e.g. [500, 500] or [429]).
    script: list[int] = field(default_factory=list)

    def validate(self) -> None:
        if self.body_shape not in ("array", "object"):
            raise ValueError(f"body_shape must be 'array' or 'object', not {self.body_shape!r}")
        if self.order not in ("asc", "desc", "shuffled"):
            raise ValueError(f"order must be 'asc', 'desc' or 'shuffled', not {self.order!r}")
        if self.retry_after_format not in ("seconds", "http-date", "none"):
            raise ValueError(f"unknown retry_after_format {self.retry_after_format!r}")
