"""A board's cells: plan them (every column and entry validated before anything runs), search hyper-parameters,
and run them in process, in a local worker pool or as Ray tasks."""
