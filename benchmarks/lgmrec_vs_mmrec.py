"""Is our ``lgmrec`` the same function as MMRec's LGMRec? A side-by-side check on the same data
with the same weights, its two random parts switched off on both sides: the Gumbel noise (each
``gumbel_softmax(logits, tau)`` replaced by ``softmax(logits / tau)``, what our evaluation uses)
and the hyperedge dropout (``keep_rate`` 1). What is left is the function: representations,
loss and every gradient.

Two steps, two interpreters (MMRec runs in its own environment, outside this project; nothing
of it is copied here, it is imported from the checkout at run time):

1. ``dump``, with MMRec's Python: build MMRec's LGMRec on an MMRec dataset (its yaml point,
   seeded as MMRec seeds it) and save its initial weights, one training batch from its sampler,
   the loss and its parts, every gradient, and the representations::

       PYTHONPATH=<mmrec>/pydeps:<mmrec>/stubs /path/to/mmrec-venv/bin/python \\
           benchmarks/lgmrec_vs_mmrec.py dump --mmrec <mmrec>/src --dataset tiktok --out /tmp/lgmrec.pt

2. ``compare``, with this project's Python: build ``lgmrec`` (its ``reference`` preset,
   ``keep_rate`` 1) on the same data, copy MMRec's weights in, and print the largest
   differences::

       .venv/bin/python benchmarks/lgmrec_vs_mmrec.py compare /tmp/lgmrec.pt \\
           --data ../shared/datasets/tiktok

``--draws K`` on the dump step (``compare`` then reports it) adds the random parts back, as training sees them: from the same
weights and batch, each side's loss over K draws of Gumbel noise and hyperedge dropout
(``keep_rate`` 0.5, training mode), mean and spread, so the two sides' expected losses compare.

MMRec's TikTok layout here: ``image_feat.npy`` as its v_feat and the audio as its t_feat
(docs/parity.md). Prints ``skipped: ...`` where the data or the checkout are absent.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

SCALARS = ("n_ui_layers", "n_mm_layers", "n_hyper_layer", "hyper_num", "keep_rate", "alpha",
           "cl_weight", "reg_weight")  # fmt: skip
#: MMRec's parameter -> ours (v_feat: image, t_feat: the second modality, audio on TikTok)
NAMES = {
    "user_embedding.weight": "user_emb", "item_id_embedding.weight": "item_emb",
    "item_image_trs": "project.image", "v_hyper": "hyper.image",
    "item_text_trs": "project.{second}", "t_hyper": "hyper.{second}",
}  # fmt: skip


def _noise_free() -> None:
    """``F.gumbel_softmax`` without its noise, in whichever process calls it."""
    import torch
    import torch.nn.functional as F

    def softmax(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
        return torch.softmax(logits / tau, dim=dim)

    F.gumbel_softmax = softmax


# ----------------------------------------------------------------- step 1: MMRec's code


def _draws(loss_fn, draws: int) -> list[float]:
    """``draws`` values of a loss with its noise on (seeded, so a rerun repeats them)."""
    import torch

    torch.manual_seed(0)
    with torch.no_grad():
        return [float(loss_fn()) for _ in range(draws)]


def dump(mmrec_src: str, dataset: str, seed: int, out: str, batch_size: int, draws: int) -> None:
    """Build MMRec's LGMRec and save what ``compare`` checks (see the module docstring)."""
    if not Path(mmrec_src, "models", "lgmrec.py").exists():
        print(f"skipped: no models/lgmrec.py in the MMRec checkout {mmrec_src}")
        return
    import torch
    import torch.nn.functional as F

    out = os.path.abspath(out)
    from _mmrec import build_mmrec_model, first_batch_gradients

    gumbel = F.gumbel_softmax
    _noise_free()
    _, train_data, model = build_mmrec_model(
        mmrec_src, "LGMRec", dataset, seed, batch_size, scalars=SCALARS
    )
    model.drop.p = 0.0  # keep_rate 1
    model.train()
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    users, items, _ = model.forward()
    batch, loss, grads = first_batch_gradients(model, train_data)
    F.gumbel_softmax, model.drop.p = gumbel, 1.0 - model.keep_rate  # the random parts back
    noisy = _draws(lambda: model.calculate_loss([t.clone() for t in batch]), draws)
    torch.save(
        {
            "n_users": model.n_users, "n_items": model.n_items, "seed": seed, "init": init,
            "grads": grads, "loss": loss.item(), "batch": batch, "noisy": noisy,
            "users": users.detach().clone(), "items": items.detach().clone(),
        },
        out,
    )  # fmt: skip
    print(f"saved MMRec's LGMRec ({dataset}, seed {seed}) to {out}; loss {loss.item():.6f}")


# ----------------------------------------------------------------- step 2: ours against it


def compare(dump_file: str, data_path: str) -> None:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from _mmrec import load_dump, relative_difference

    from cranerec.models.base import Batch
    from cranerec.train import build_config

    loaded = load_dump(dump_file, data_path)
    if loaded is None:
        return
    ref, data = loaded
    gumbel = F.gumbel_softmax
    _noise_free()
    from cranerec.models.lgmrec import LGMRec

    config = build_config(model="lgmrec", preset="reference", overrides=["model.keep_rate=1.0"])
    model = LGMRec(data, config.model)
    model.train()
    second = model.modalities[1]
    params = dict(model.named_parameters())
    names = {k: v.format(second=second) for k, v in NAMES.items()}
    with torch.no_grad():
        for theirs, ours in names.items():
            params[ours].copy_(ref["init"][theirs])
        users, items = model()
    scale = float(ref["users"].abs().max())
    print(f"representations, max |ours - MMRec|: users {float((users - ref['users']).abs().max()):.3g}, "
          f"items {float((items - ref['items']).abs().max()):.3g} (largest |value| {scale:.3g})")  # fmt: skip
    u, pos, neg = (t.long() for t in ref["batch"])
    loss, parts = model.loss(Batch(user_idx=u, pos_idx=pos, neg_idx=neg))
    loss.backward()
    print(f"loss: ours {loss.item():.6f} (bpr {parts['bpr']:.6f}, contrast {parts['hcl']:.6f}, "
          f"reg {parts['reg']:.3g}), MMRec {ref['loss']:.6f}: difference {loss.item() - ref['loss']:.2e}")  # fmt: skip
    cells = ", ".join(
        f"{ours} {relative_difference(params[ours].grad, ref['grads'][theirs]):.1e}"
        for theirs, ours in names.items()
    )
    print(f"gradients, relative |ours - MMRec| / |MMRec|: {cells}")
    if ref.get("noisy"):
        keep = build_config(model="lgmrec", preset="reference").model.keep_rate
        F.gumbel_softmax, model.drop.p = gumbel, 1.0 - keep
        batch = Batch(user_idx=u, pos_idx=pos, neg_idx=neg)
        ours = _draws(lambda: model.loss(batch)[0], len(ref["noisy"]))
        a, b = np.array(ours), np.array(ref["noisy"])
        print(f"loss with noise and dropout, {len(a)} draws: ours {a.mean():.5f} ± {a.std():.5f}, "
              f"MMRec {b.mean():.5f} ± {b.std():.5f}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    d = sub.add_parser("dump", help="with MMRec's Python: save MMRec's weights, loss, grads")
    d.add_argument("--mmrec", required=True, help="MMRec's src/ folder")
    d.add_argument("--dataset", default="tiktok")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--batch-size", type=int, default=2048)
    d.add_argument("--out", required=True)
    d.add_argument("--draws", type=int, default=0, help="noisy loss draws (see the docstring)")
    c = sub.add_parser("compare", help="with this project's Python: ours against the dump")
    c.add_argument("dump")
    c.add_argument("--data", default="../shared/datasets/tiktok")
    args = p.parse_args()
    if args.step == "dump":
        dump(args.mmrec, args.dataset, args.seed, args.out, args.batch_size, args.draws)
    else:
        compare(args.dump, args.data)


if __name__ == "__main__":
    main()
