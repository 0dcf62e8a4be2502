"""G-effect toolkit (arXiv 2502.19301): measurement and the training-loop callback that records it."""
