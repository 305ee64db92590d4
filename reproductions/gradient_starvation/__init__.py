"""Gradient Starvation (Pezeshki et al. 2021): Spectral Decoupling (`losses`), the two-moons margin callback
(`two_moons_margin`) and the colored-digits dataset (`colored_digits`, a `dataset.loader`)."""
