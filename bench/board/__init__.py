"""A pure function of (LeaderboardSpec, stored records): tables, findings, markdown, HTML and plots. Reads records
only: no dataset, no model."""
