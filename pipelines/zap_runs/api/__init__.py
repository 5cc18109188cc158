"""The Partner API: the HTTP client, pacing, OAuth tokens, paging, the run object."""
