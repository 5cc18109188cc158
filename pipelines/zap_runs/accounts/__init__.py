"""Many accounts: the entries, one pass over them, the schedule, each account's state and outcome."""
