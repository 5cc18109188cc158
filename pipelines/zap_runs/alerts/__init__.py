"""Incident alerts: the channels, the messages, and their delivery state in the warehouse."""
