"""Grams: Gradient Descent with Adaptive Momentum Scaling (Cao, Li, Song; arXiv 2412.17107): README.md."""
