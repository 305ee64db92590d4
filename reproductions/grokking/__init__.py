"""Grokking at the Edge of Numerical Stability (Prieto et al. 2025): its StableMax loss (`losses`)."""
