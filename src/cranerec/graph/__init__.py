"""Graph building shared by every model: user-item adjacency, normalisation, kNN item graphs,
edge dropping, and conversion to torch sparse tensors."""

from cranerec.graph.adjacency import (
    bipartite_adjacency,
    normalize_adjacency,
    to_torch_sparse,
)
from cranerec.graph.knn import knn_graph

__all__ = ["bipartite_adjacency", "knn_graph", "normalize_adjacency", "to_torch_sparse"]
