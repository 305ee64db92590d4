"""optrepro: reproductions of optimization-for-deep-learning papers, with claims checked as data."""

__version__ = "0.1.0"
