"""``ubench``: one module per group of commands; ``bench.cli.main`` parses the arguments and dispatches."""
