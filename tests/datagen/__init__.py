"""Generated datasets written in the real on-disk formats the product reads (tests only, never the product)."""
