"""Load the leaderboard plug-in (``bench.pytest_plugin``) from the source tree, so ``pytest leaderboards/...``
works in a checkout before any install. An installed package registers the same module through its ``pytest11``
entry point under the module's own name, and pytest then skips this request: the plug-in is registered once."""

pytest_plugins = ["bench.pytest_plugin"]
