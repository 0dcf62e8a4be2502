"""G-effect toolkit (arXiv 2502.19301): measurement, training-loop callback, summaries and plots."""
