"""Structure learning (linear SEMs): data, NOTEARS, TOPO, graph metrics, and the `structure_learning` task."""
SOLVERS = ("notears", "topo", "notears_then_topo")
GRAPH_TYPES = ("ER", "SF")
NOISE_TYPES = ("gauss", "exp", "gumbel")
