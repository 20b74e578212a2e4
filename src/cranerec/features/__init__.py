"""Item features from raw content: text (sentence-transformers) and images (a local vision
model), aligned to items by raw id, each written with a provenance sidecar.

- ``read_item_table`` / ``align_items``: the item table (CSV, TSV or Parquet) and the one place
  where its rows are matched to the dataset's items by raw id (never by row order).
- ``embed_text`` / ``embed_images``: the encoders.
- ``write_features``: ``<modality>_feat.npy`` + ``<modality>_feat.json`` (provenance).
- ``build_text_features`` / ``build_image_features``: the whole path, as ``cranerec features``
  runs it; ``build_folder``: a log and an item table to a trainable MMRec folder
  (``cranerec data build``).
"""

from cranerec.features.folder import BuildResult, ContentConfig, build_folder
from cranerec.features.items import ItemTable, align_items, read_item_table
from cranerec.features.pipeline import build_image_features, build_text_features
from cranerec.features.provenance import write_features

__all__ = [
    "BuildResult", "ContentConfig", "ItemTable", "align_items", "build_folder", "build_image_features", "build_text_features", "read_item_table",
    "write_features",
]  # fmt: skip
