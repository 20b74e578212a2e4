"""Is our ``dualgnn`` the same function as MMRec's DualGNN? A side-by-side check on the same data
with the same weights and the same sampled user graph.

Two steps, two interpreters (MMRec runs in its own environment, outside this project; nothing
of it is copied here, it is imported from the checkout at run time):

1. ``dump``: with MMRec's Python, build MMRec's DualGNN on an MMRec dataset (its yaml point,
   seeded as MMRec seeds it), draw its first epoch's user graph (``pre_epoch_processing``), and
   save to one file: its initial weights, the graph's slots and weights, its stored neighbour
   lists (``user_graph_dict.npy``), one training batch from its sampler, the loss and every
   gradient for that batch, and the representations that forward computed::

       PYTHONPATH=<mmrec>/pydeps:<mmrec>/stubs /path/to/mmrec-venv/bin/python \\
           benchmarks/dualgnn_vs_mmrec.py dump --mmrec <mmrec>/src --dataset tiktok --out /tmp/dualgnn.pt

2. ``compare``: with this project's Python, build ``dualgnn`` (its ``reference`` point) on the
   same data (our loader, the dataset MMRec read), copy MMRec's weights and its sampled user
   graph in, and report the largest differences of the representations, the loss (ours leaves
   out the penalty on ``weight_i``, a parameter that reaches no score; its value is printed) and
   every gradient; then how the two user graphs compare before sampling: per user, whether the
   co-occurrence counts of the k slots agree, and the share of the same neighbours (the rest are
   ties among equal counts, ordered differently)::

       .venv/bin/python benchmarks/dualgnn_vs_mmrec.py compare /tmp/dualgnn.pt \\
           --data ../shared/datasets/tiktok

3. ``train``: our training run (``cranerec train`` and its arguments after ``--``) with the user
   graph's neighbour lists read from MMRec's ``user_graph_dict.npy`` instead of computed, so
   that the two graphs are the same list for list (ties included) and only the seeds differ::

       .venv/bin/python benchmarks/dualgnn_vs_mmrec.py train <mmrec>/data/tiktok/user_graph_dict.npy \
           -- --data ../shared/datasets/tiktok --model dualgnn --preset reference --seeds 1 --out DIR

MMRec's TikTok layout here: ``image_feat.npy`` as its v_feat and the audio as its t_feat
(docs/parity.md). Prints ``skipped: ...`` where the data or the checkout are absent.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# ----------------------------------------------------------------- step 1: MMRec's code


def dump(mmrec_src: str, dataset: str, seed: int, out: str, batch_size: int) -> None:
    """Build MMRec's DualGNN and save what ``compare`` checks (see the module docstring)."""
    if not Path(mmrec_src, "models", "dualgnn.py").exists():
        print(f"skipped: no models/dualgnn.py in the MMRec checkout {mmrec_src}")
        return
    import torch

    out = os.path.abspath(out)
    from _mmrec import build_mmrec_model, first_batch_gradients

    _, train_data, model = build_mmrec_model(
        mmrec_src,
        "DualGNN",
        dataset,
        seed,
        batch_size,
        scalars=("reg_weight", "learning_rate", "aggr_mode"),  # the yaml's one-point lists
    )
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.pre_epoch_processing()
    batch, loss, grads = first_batch_gradients(model, train_data)
    stored = {u: (list(map(int, v[0])), [float(c) for c in v[1]])
              for u, v in model.user_graph_dict.items()}  # fmt: skip
    torch.save(
        {
            "n_users": model.n_users, "n_items": model.n_items, "seed": seed, "k": model.k,
            "init": init, "grads": grads, "loss": loss.item(), "batch": batch,
            "weight_i_penalty": float(model.reg_weight * (model.weight_i.detach() ** 2).mean()),
            "slots": torch.tensor(model.epoch_user_graph, dtype=torch.long),
            "slot_weights": model.user_weight_matrix.detach().clone(),
            "stored": stored,
            "users": model.result_embed[: model.n_users].detach().clone(),
            "items": model.result_embed[model.n_users :].detach().clone(),
        },
        out,
    )  # fmt: skip
    print(f"saved MMRec's DualGNN ({dataset}, seed {seed}) to {out}; loss {loss.item():.6f}")


# ----------------------------------------------------------------- step 2: ours against it


def compare(dump_file: str, data_path: str) -> None:
    import numpy as np
    import torch
    from _mmrec import load_dump, relative_difference

    from cranerec.config import from_dict
    from cranerec.models.base import Batch
    from cranerec.models.dualgnn import DUALGNN_POINT, DualGNN, DualGNNConfig

    loaded = load_dump(dump_file, data_path)
    if loaded is None:
        return
    ref, data = loaded
    model = DualGNN(data, from_dict(DualGNNConfig, dict(DUALGNN_POINT)))
    init = ref["init"]
    slots = {m: p for m, p in zip(model.modalities, ("v_gcn", "t_gcn"), strict=False)}
    with torch.no_grad():
        for m, p in slots.items():
            gcn = model.gcn[m]
            gcn.preference.copy_(init[f"{p}.preference"])
            gcn.mlp[0].weight.copy_(init[f"{p}.MLP.weight"])
            gcn.mlp[0].bias.copy_(init[f"{p}.MLP.bias"])
            gcn.mlp[2].weight.copy_(init[f"{p}.MLP_1.weight"])
            gcn.mlp[2].bias.copy_(init[f"{p}.MLP_1.bias"])
        if model.weight_u is not None:
            model.weight_u.copy_(init["weight_u"].squeeze(-1))
        graph = model.user_graph
        graph.slots = ref["slots"].clone()
        graph.weights = ref["slot_weights"].float().clone()
        graph._build()
    with torch.no_grad():
        users, items = model()
    scale = float(ref["users"].abs().max())
    print(f"representations, max |ours - MMRec|: users {float((users - ref['users']).abs().max()):.3g}, "
          f"items {float((items - ref['items']).abs().max()):.3g} (largest |value| {scale:.3g})")  # fmt: skip
    u, pos, neg = (t.long() for t in ref["batch"])
    loss, _ = model.loss(Batch(user_idx=u, pos_idx=pos, neg_idx=neg))
    loss.backward()
    print(f"loss: ours {loss.item():.6f}, MMRec {ref['loss']:.6f} = ours + its weight_i penalty "
          f"{ref['weight_i_penalty']:.6f}? difference {ref['loss'] - ref['weight_i_penalty'] - loss.item():.2e}")  # fmt: skip
    grads = dict(ref["grads"])
    for p in ("v", "t"):  # forward sets self.v_preference = the same Parameter: named there
        if f"{p}_preference" in grads:
            grads.setdefault(f"{p}_gcn.preference", grads[f"{p}_preference"])
    for m, p in slots.items():
        gcn = model.gcn[m]
        pairs = {"P": (gcn.preference, f"{p}.preference"), "W1": (gcn.mlp[0].weight, f"{p}.MLP.weight"),
                 "b1": (gcn.mlp[0].bias, f"{p}.MLP.bias"), "W2": (gcn.mlp[2].weight, f"{p}.MLP_1.weight"),
                 "b2": (gcn.mlp[2].bias, f"{p}.MLP_1.bias")}  # fmt: skip
        cells = ", ".join(
            f"{n} {relative_difference(t.grad, grads[k]):.1e}" for n, (t, k) in pairs.items()
        )
        print(f"gradients, relative |ours - MMRec| / |MMRec|, {m} ({p}): {cells}")
    if model.weight_u is not None:
        print(
            f"gradients, weight_u: {relative_difference(model.weight_u.grad, grads['weight_u'].squeeze(-1)):.1e}"
        )

    fresh = DualGNN(data, from_dict(DualGNNConfig, dict(DUALGNN_POINT))).user_graph
    k, agree, shared, n_users = ref["k"], 0, 0.0, data.n_users
    for user in range(n_users):
        theirs_users, theirs_counts = ref["stored"][user]
        n = min(k, len(theirs_users), int(fresh.length[user]))
        ours_counts = fresh._counts[user, :n]
        agree += bool(np.array_equal(np.sort(theirs_counts[:n]), np.sort(ours_counts)))
        shared += len(set(theirs_users[:n]) & set(fresh._users[user, :n].tolist())) / max(n, 1)
    print(f"user graphs before sampling: the {k} slots' counts agree for {agree} / {n_users} users; "
          f"mean share of the same neighbours {shared / n_users:.3f} (the rest: ties ordered differently)")  # fmt: skip


def train_with_mmrec_graph(npy: str, argv: list[str]) -> int:
    """``cranerec train argv`` with ``cooccurrence_neighbours`` reading MMRec's stored lists."""
    import numpy as np

    import cranerec.graph.user_graph as user_graph
    from cranerec.cli import main as cli

    stored = np.load(npy, allow_pickle=True).item()  # MMRec's own file, made by its script

    def from_file(train, n=user_graph.STORED_NEIGHBOURS, rng=None):
        n_users = train.shape[0]
        users = np.zeros((n_users, n), dtype=np.int64)
        counts = np.zeros((n_users, n), dtype=np.float32)
        length = np.zeros(n_users, dtype=np.int64)
        for u in range(n_users):
            ids, values = stored[u][0][:n], stored[u][1][:n]
            users[u, : len(ids)], counts[u, : len(ids)], length[u] = ids, values, len(ids)
        return users, counts, length

    user_graph.cooccurrence_neighbours = from_file
    return cli(["train", *argv])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    d = sub.add_parser("dump", help="with MMRec's Python: save MMRec's model, graph, loss, grads")
    d.add_argument("--mmrec", required=True, help="MMRec's src/ folder")
    d.add_argument("--dataset", default="tiktok")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--batch-size", type=int, default=2048)
    d.add_argument("--out", required=True)
    c = sub.add_parser("compare", help="with this project's Python: ours against the dump")
    c.add_argument("dump")
    c.add_argument("--data", default="../shared/datasets/tiktok")
    t = sub.add_parser("train", help="our training run with MMRec's user_graph_dict.npy lists")
    t.add_argument("graph", help="MMRec's user_graph_dict.npy")
    t.add_argument(
        "train_args", nargs=argparse.REMAINDER, help="-- then `cranerec train` arguments"
    )
    args = p.parse_args()
    if args.step == "train":
        rest = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
        sys.exit(train_with_mmrec_graph(args.graph, rest))
    if args.step == "dump":
        dump(args.mmrec, args.dataset, args.seed, args.out, args.batch_size)
    else:
        compare(args.dump, args.data)


if __name__ == "__main__":
    main()
