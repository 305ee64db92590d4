"""NOTEARS and TOPO on linear SEMs (notears_topo): data, solvers, graph metrics, and the structure-learning task
(`task.StructureLearningTask`, selected by the presets with `task=structure_learning`)."""

SOLVERS = ("notears", "topo", "notears_then_topo")
GRAPH_TYPES = ("ER", "SF")
NOISE_TYPES = ("gauss", "exp", "gumbel")
