"""What people see: the live progress, the sync summary, `status`, the terminal report, the dashboard."""
