"""The load and the warehouse: the dlt pipeline, destinations, recovery, locks, the sync log,
forget, the SQL models."""
