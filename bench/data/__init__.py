"""Task data: task families (synthetic, TOFU, MUSE, WMDP) from task YAMLs, hub loading at pinned revisions, the
row schema, tokenisation with answer masks, batch sampling, and the data files of lm-eval task templates."""
