"""Cautious Weight Decay (Chen et al., arXiv 2510.12402): decay only the coordinates whose update agrees in sign
with the parameter, over any base optimizer (README.md)."""
