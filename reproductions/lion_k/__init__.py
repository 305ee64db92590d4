"""Lion-K (Chen et al., ICLR 2024): the weight-bound callback (`weight_bound`) its presets put on the callbacks node."""
