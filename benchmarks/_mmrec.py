"""MMRec's model, built as its ``quick_start`` builds it, for the side-by-side checks that run
with MMRec's own Python (``crane_official_vs_authors.py``, ``dualgnn_vs_mmrec.py``). MMRec is
imported from its checkout at run time; nothing of it is copied here."""

from __future__ import annotations

import os
import sys


def build_mmrec_model(mmrec_src: str, name: str, dataset: str, seed: int, batch_size: int,
                      scalars: tuple[str, ...] = ()):  # fmt: skip
    """``(config, train_data, model)`` for MMRec model ``name`` on ``dataset``, seeded as MMRec
    seeds it. Works from ``mmrec_src`` (MMRec reads ``./configs``): the caller's relative paths
    change meaning. ``scalars``: yaml keys given as one-point lists, replaced by that point."""
    os.chdir(mmrec_src)
    sys.path.insert(0, mmrec_src)
    from utils.configurator import Config
    from utils.dataloader import TrainDataLoader
    from utils.dataset import RecDataset
    from utils.utils import get_model, init_seed

    config = Config(name, dataset, {"seed": seed, "use_gpu": False}, False)
    for key in scalars:
        config[key] = config[key][0] if isinstance(config[key], list) else config[key]
    full = RecDataset(config)
    str(full)  # as MMRec's quick_start does: __str__ sets the counts the loader reads
    train_dataset, _, _ = full.split()
    str(train_dataset)
    train_data = TrainDataLoader(config, train_dataset, batch_size=batch_size, shuffle=True)
    init_seed(seed)
    train_data.pretrain_setup()
    return config, train_data, get_model(name)(config, train_data)


def relative_difference(a, b) -> float:
    """``|a - b| / |b|`` (Frobenius norms; ``b`` the reference)."""
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def load_dump(dump_file: str, data_path: str):
    """``(dump, dataset)`` for a ``compare`` step: the file a ``dump`` step saved (with MMRec's
    ``n_users`` / ``n_items``) and our loader's dataset of the same shape; None after printing
    ``skipped: ...`` where either is absent."""
    from pathlib import Path

    import torch

    from cranerec.data.loaders import DataConfig, load_dataset

    if not Path(dump_file).exists() or not Path(data_path).exists():
        print(f"skipped: {dump_file} or {data_path} is absent (run the dump step first)")
        return None
    ref = torch.load(dump_file, weights_only=False)
    data = load_dataset(DataConfig(path=data_path))
    if (data.n_users, data.n_items) != (ref["n_users"], ref["n_items"]):
        raise SystemExit(
            f"{data_path}: {data.n_users} x {data.n_items}, the dump has another shape"
        )
    return ref, data


def first_batch_gradients(model, train_data):
    """``(batch, loss, grads)``: MMRec's first training batch (users, positives, negatives),
    ``calculate_loss`` on a copy (some forwards shift item ids in place), and every gradient."""
    batch = [t.clone() for t in next(iter(train_data))[:3]]
    loss = model.calculate_loss([t.clone() for t in batch])
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}
    return batch, loss, grads
