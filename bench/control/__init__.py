"""Control of unlearning runs: standardised budget tiers (and, with arXiv 2406.09179, calibration)."""
