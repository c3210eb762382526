"""A fleet at a glance: each database's outcome, results grouped by what they share, the report page."""
