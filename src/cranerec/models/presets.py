"""Training points shared by several models' presets (one definition each)."""

#: MMRec's training point (``configs/overall.yaml``), shared by the reference presets.
MMREC_TRAIN = {
    "lr": 1e-3, "batch_size": 2048, "epochs": 1000, "patience": 20, "lr_decay": 1.0,
    "stop_metric": "recall@20", "negative_pool": "seen",
}  # fmt: skip
