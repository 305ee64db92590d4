"""M-FAC (Frantar, Kurtic, Alistarh, NeurIPS 2021, arXiv 2107.03356): inverse empirical-Fisher-vector products
from a sliding window of gradients, as an optimizer step over any base optimizer (README.md)."""
