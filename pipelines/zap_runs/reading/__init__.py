"""What to read of one account, cheapest first: windows, watched runs, re-checks, listings,
backfill parts, rows, spend."""
