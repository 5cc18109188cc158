"""Benchmark: runs per second through DataPolicy.apply_row for ~1 KB data_in and data_out each.

Usage: python benchmarks/data_policy.py [--runs 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import time

from pipelines.zap_runs.reading.policy import DataPolicy


def payload(rng: random.Random, n: int) -> str:
    """A form submission as a zap moves it: contact fields, an address, a few line items."""
    return json.dumps({
        "id": n, "Email": f"user{rng.randrange(10**6)}@example.com",
        "phone": f"+1 555 {rng.randrange(10**7):07d}", "first_name": "Ada", "last_name": "Lovelace",
        "company": {"name": "Analytical Engines Ltd", "website": "https://example.com",
                    "address": {"street": "12 Marylebone Road", "city": "London",
                                "postcode": "NW1 5LR", "country": "GB"}},
        "items": [{"sku": f"SKU-{i:04d}", "qty": rng.randrange(1, 9), "price": 19.99,
                   "contact": {"email": f"buyer{i}@example.com", "note": "leave at the door"}}
                  for i in range(3)],
        "tags": ["lead", "newsletter", "webinar-2026"], "consent": True, "score": 0.87,
        "submitted_at": "2026-11-29T12:00:00Z", "utm": {"source": "ads", "campaign": "winter"},
        "message": "Hello, we would like a quote for the annual plan for our team of twelve, "
                   "billed yearly, with onboarding in January. Please call in the afternoon.",
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20000)
    args = parser.parse_args()
    rng = random.Random(1)
    texts = [(payload(rng, n), payload(rng, n)) for n in range(args.runs)]
    size = sum(len(a) + len(b) for a, b in texts) / (2 * len(texts))
    keys = ["email", "phone", "password"]
    policies = {
        "keep (default)": DataPolicy(),
        "drop both": DataPolicy(data_in="drop", data_out="drop"),
        "redact both, hmac": DataPolicy(data_in="redact", data_out="redact", redact_keys=keys,
                                        salt=b"a long random secret"),
        "redact both, sha256": DataPolicy(data_in="redact", data_out="redact", redact_keys=keys),
        "redact both, null": DataPolicy(data_in="redact", data_out="redact", redact_keys=keys,
                                        redact_with="null"),
        "redact both, no key matches": DataPolicy(data_in="redact", data_out="redact",
                                                  redact_keys=["ssn"]),
    }
    print(f"{args.runs:,} runs, data_in and data_out of {size:.0f} characters each on average")
    for label, policy in policies.items():
        rows = [{"id": str(n), "data_in": a, "data_out": b} for n, (a, b) in enumerate(texts)]
        started = time.perf_counter()
        for row in rows:
            policy.apply_row(row)
        elapsed = time.perf_counter() - started
        print(f"{label:30s} {args.runs / elapsed:12,.0f} runs/s ({elapsed * 1e6 / args.runs:7.2f} µs a run)")


if __name__ == "__main__":
    main()
