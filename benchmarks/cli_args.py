"""Argument types the benchmark scripts share."""

from __future__ import annotations

import argparse


def positive(kind):
    """An argparse type: a number above 0 (0 syncs, hours or accounts measure nothing)."""
    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value
    return parse
