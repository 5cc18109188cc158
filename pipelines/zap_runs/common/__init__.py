"""What every layer uses: errors, settings, the clock, the project's config, SQL table helpers."""
