"""The item feature tables a model reads, one per modality, held under their names (instead of
buffers named by string formatting, ``getattr(self, f"feat_{m}")``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ItemFeatures(nn.Module):
    """Named item feature tables ``[n_items, width_m]``, float32, in ``modalities`` order.

    ``trainable``: the tables are parameters, fine-tuned with the model (the MMRec references
    do this for some models; the tables are copies, so the dataset is never written), saved in
    checkpoints as ``<attribute>.<modality>``. Otherwise they are constant buffers, not saved
    (the dataset holds them), sharing memory with the dataset's arrays where they can.
    ``normalize``: ``l2`` scales each item's row to unit length once, when built.

    ``features[m]`` reads one table; iterating gives the modality names.
    """

    def __init__(
        self,
        features: Mapping[str, np.ndarray],
        modalities: Sequence[str],
        *,
        trainable: bool = False,
        normalize: Literal["none", "l2"] = "none",
    ) -> None:
        super().__init__()
        self.modalities = list(modalities)
        for m in self.modalities:
            x = torch.as_tensor(features[m], dtype=torch.float32)  # [n_items, width_m]
            if normalize == "l2":
                x = F.normalize(x, dim=1)
            try:
                if trainable:
                    self.register_parameter(m, nn.Parameter(x.clone()))
                else:
                    self.register_buffer(m, x, persistent=False)
            except (KeyError, TypeError) as e:  # "." in the name, or a name nn.Module uses
                raise ValueError(f"modality name {m!r} cannot name a feature table: {e}") from None

    def __getitem__(self, modality: str) -> torch.Tensor:
        if modality not in self.modalities:
            raise KeyError(f"no features for modality {modality!r} (have {self.modalities})")
        return getattr(self, modality)

    def __iter__(self) -> Iterator[str]:
        return iter(self.modalities)

    def __len__(self) -> int:
        return len(self.modalities)
