"""4-bit Shampoo (Wang, Zhou, Li, Huang, NeurIPS 2024, arXiv 2405.18144): quantizing the preconditioner's eigenvectors
instead of the preconditioner, measured on the preconditioners of a real Shampoo run (README)."""
