"""Publishing a board: its written tables (naming the release they are), content-hashed release bundles, the
reproduction check against a release, and citations."""
