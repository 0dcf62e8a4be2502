"""Task data: the synthetic world, task YAML loading, tokenisation with answer masks."""
