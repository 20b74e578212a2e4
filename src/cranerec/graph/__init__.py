"""Graph building shared by every model: the user-item graph (``UserItemGraph``: adjacency,
edge sampling, propagation), normalisation, kNN item graphs, edge dropping, and conversion to
torch sparse tensors."""

from cranerec.graph.adjacency import (
    bipartite_adjacency,
    kept_edges_adjacency,
    normalize_adjacency,
    to_torch_sparse,
)
from cranerec.graph.dropedge import (
    DROPEDGE_MODES,
    DropEdgeMode,
    drop_edges,
    edge_keep_probability,
)
from cranerec.graph.edge_messages import dot_product_attention, edge_weighted_sum
from cranerec.graph.knn import (
    knn_adjacency,
    knn_graph,
    knn_join,
    knn_laplacian,
    knn_laplacian_join,
    mixed_knn_adjacency,
    normalize_joined,
)
from cranerec.graph.propagate import KnnProduct, propagate, propagate_joined, sparse_mm
from cranerec.graph.softmax import edge_softmax
from cranerec.graph.user_graph import (
    UserAggr,
    UserCooccurrenceGraph,
    cooccurrence_counts,
    cooccurrence_neighbours,
)
from cranerec.graph.user_item import GraphNorm, UserItemGraph

__all__ = [
    "DROPEDGE_MODES", "DropEdgeMode", "drop_edges", "edge_keep_probability",
    "edge_softmax", "GraphNorm", "UserItemGraph",
    "bipartite_adjacency", "kept_edges_adjacency", "knn_graph", "normalize_adjacency", "propagate", "sparse_mm",
    "to_torch_sparse", "knn_adjacency", "mixed_knn_adjacency", "knn_laplacian",
    "knn_join", "knn_laplacian_join", "normalize_joined", "propagate_joined",
    "UserAggr", "UserCooccurrenceGraph", "cooccurrence_counts", "cooccurrence_neighbours",
    "dot_product_attention", "edge_weighted_sum", "KnnProduct",
]  # fmt: skip
