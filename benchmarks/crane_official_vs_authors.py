"""Is ``crane_official`` the same function as the CRANE authors' code? A side-by-side check on
the same data with the same weights.

Two steps, two interpreters (the authors' code runs in MMRec's own environment, outside this
project; nothing of it is copied here, it is imported from the checkout at run time):

1. ``dump``: with MMRec's Python, build the authors' model (``models/crane.py`` of MKC-Lab/CRANE
   placed in an MMRec checkout) on an MMRec dataset, seeded as MMRec seeds it, and save to one
   file: its initial weights, its item graph, its full and one pruned user-item graph, its
   full-graph outputs, and the loss and every gradient for one training batch on the pruned graph::

       PYTHONPATH=<stubs> /path/to/mmrec-venv/bin/python benchmarks/crane_official_vs_authors.py \
           dump --mmrec /path/to/MMRec/src --dataset tiktok_va --out /tmp/authors.pt

2. ``compare``: with this project's Python, build ``crane_official`` on the same data (our
   loader, the dataset MMRec read), copy the authors' weights in, rebuild the same pruned graph
   from the edges they kept, and report the largest differences (graphs, outputs, loss,
   gradients), then the statistics of each parameter at initialisation (ours vs theirs, each
   seeded its own way)::

       .venv/bin/python benchmarks/crane_official_vs_authors.py compare /tmp/authors.pt \
           --data ../shared/datasets/tiktok

Prints ``skipped: ...`` where the data or the checkout are absent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# ----------------------------------------------------------------- step 1: the authors' code


def dump(mmrec_src: str, dataset: str, seed: int, out: str, batch_size: int) -> None:
    """Build the authors' model in MMRec and save what ``compare`` checks (see the docstring)."""
    if not Path(mmrec_src, "models", "crane.py").exists():
        print(f"skipped: no models/crane.py in the MMRec checkout {mmrec_src}")
        return
    import torch
    from _mmrec import build_mmrec_model

    config, train_data, model = build_mmrec_model(
        mmrec_src, "crane", dataset, seed, batch_size, scalars=("dropout",)
    )
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}

    model.eval()
    with torch.no_grad():
        user_full, item_full = model.forward(model.norm_adj)
    model.train()
    model.pre_epoch_processing()  # one pruned graph, their sampler
    masked = model.masked_adj.coalesce()
    batch = next(iter(train_data))  # [users, pos, neg], their sampler
    loss = model.calculate_loss(batch)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}

    mm = model.mm_adj.coalesce()
    norm = model.norm_adj.coalesce()
    torch.save(
        {
            "n_users": model.n_users, "n_items": model.n_items,
            "dropout": float(config["dropout"]), "seed": seed,
            "init": init, "grads": grads, "loss": loss.item(),
            "batch": [t.clone() for t in batch[:3]],
            "mm_adj": (mm.indices(), mm.values()), "norm_adj": (norm.indices(), norm.values()),
            "masked_adj": (masked.indices(), masked.values()),
            "edges": model.edge_indices.clone(),
            "user_full": user_full, "item_full": item_full,
        },
        out,
    )  # fmt: skip
    print(f"saved the authors' model ({dataset}, seed {seed}) to {out}; loss {loss.item():.6f}")


# ----------------------------------------------------------------- step 2: ours against it


def _max_diff(a, b) -> float:
    return float((a - b).abs().max())


def _dense(pair, shape):
    import torch

    idx, val = pair
    return torch.sparse_coo_tensor(idx, val, shape).coalesce().to_dense()


def _tie_gaps(dataset, model, theirs_s) -> dict[str, float]:
    """Per modality, the largest |cos(i, j_ours) - cos(i, j_theirs)| over the neighbours that
    one graph has and the other lacks in that modality's kNN lists (0 = exact ties)."""
    import numpy as np
    import torch

    from cranerec.graph import knn_graph

    gaps = {}
    for m in model.modalities:
        x = torch.tensor(dataset.features[m], dtype=torch.float64)
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        ours, _ = knn_graph(x.float(), model.config.knn_k, exclude_self=False)
        theirs = torch.topk(x.float() @ x.float().T, model.config.knn_k, dim=-1).indices.numpy()
        worst = 0.0
        for i in range(dataset.n_items):
            a = set(ours[i].tolist())
            b = set(theirs[i].tolist())
            if a != b:
                sims = (x[i] @ x.T).numpy()
                worst = max(worst, float(np.max(sims[list(a ^ b)]) - np.min(sims[list(a ^ b)])))
        gaps[m] = worst
    return gaps


def compare(dump_path: str, data: str, atol: float) -> int:
    """Load the dump, build ``crane_official`` on ``data`` with the authors' weights, report the
    differences; exit status 1 when one exceeds ``atol``."""
    if not Path(dump_path).exists():
        print(f"skipped: no dump at {dump_path} (run the dump step first)")
        return 0
    import numpy as np
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from _data import load_or_skip

    from cranerec.models.base import Batch, set_kept_edges
    from cranerec.models.crane_official import CRANEOfficial, CRANEOfficialConfig
    from cranerec.models.frozen_graph import FREEDOM_POINT

    dataset = load_or_skip(data)
    if dataset is None:
        return 0
    ref = torch.load(dump_path, weights_only=False)
    if (ref["n_users"], ref["n_items"]) != (dataset.n_users, dataset.n_items):
        print(f"the dump has {ref['n_users']} users / {ref['n_items']} items, the data "
              f"{dataset.n_users} / {dataset.n_items}: not the same dataset")  # fmt: skip
        return 1
    point = dict(FREEDOM_POINT)
    point["dropout"] = ref["dropout"]
    torch.manual_seed(ref["seed"])
    model = CRANEOfficial(dataset, CRANEOfficialConfig(**point))
    image, other = model.modalities  # the authors' v_feat, t_feat

    # Their parameter name -> ours.
    names = {
        "user_embedding.weight": "user_emb", "item_id_embedding.weight": "item_emb",
        "image_embedding.weight": f"features.{image}", "text_embedding.weight": f"features.{other}",
        "image_trs.weight": f"project.{image}.weight", "image_trs.bias": f"project.{image}.bias",
        "text_trs.weight": f"project.{other}.weight", "text_trs.bias": f"project.{other}.bias",
        "cross_modal_attention.visual_proj.weight": f"attn_project.{image}.weight",
        "cross_modal_attention.visual_proj.bias": f"attn_project.{image}.bias",
        "cross_modal_attention.textual_proj.weight": f"attn_project.{other}.weight",
        "cross_modal_attention.textual_proj.bias": f"attn_project.{other}.bias",
    }  # fmt: skip
    for k in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"):
        names[f"cross_modal_attention.attention.{k}"] = f"attention.{k}"
    ours = dict(model.named_parameters())
    missing = set(ours) - set(names.values())
    if missing:
        print(f"our parameters with no counterpart in the dump: {sorted(missing)}")
        return 1

    rows: list[tuple[str, float]] = []
    print("initialisation (each seeded its own way): name, theirs mean/std, ours mean/std")
    for theirs_name, our_name in names.items():
        t, o = ref["init"][theirs_name].float(), ours[our_name].detach()
        print(f"  {our_name:38s} {t.mean():+.4f}/{t.std():.4f}   {o.mean():+.4f}/{o.std():.4f}")
    with torch.no_grad():
        for theirs_name, our_name in names.items():
            ours[our_name].copy_(ref["init"][theirs_name])

    n = dataset.n_users + dataset.n_items
    theirs_s = _dense(ref["mm_adj"], (dataset.n_items,) * 2)
    s_diff = (model.adj_item.to_dense() - theirs_s).abs()
    rows_differ = int((s_diff.max(1).values > atol).sum())
    print(f"\nitem graph S: {rows_differ} of {dataset.n_items} rows differ, by "
          f"{int((s_diff > atol).sum())} entries (largest {float(s_diff.max()):.3f}): "
          "neighbour lists that differ at the k-th place, where the cosines tie")  # fmt: skip
    print(
        f"  cosine gap at the swapped neighbours, per modality: {_tie_gaps(dataset, model, theirs_s)}"
    )
    # From here on both use their S, so the rest of the function is compared on its own.
    sparse_s = theirs_s.to_sparse()
    model.adj_item, model.adj_item_t = sparse_s, theirs_s.T.contiguous().to_sparse()
    rows.append(("full user-item graph", _max_diff(model.graph.adj.to_dense(),
                                                    _dense(ref["norm_adj"], (n, n)))))  # fmt: skip

    model.eval()
    with torch.no_grad():
        user_full, item_full = model.forward()
    rows.append(("users, full graph", _max_diff(user_full, ref["user_full"])))
    rows.append(("items, full graph", _max_diff(item_full, ref["item_full"])))

    # The edges they kept -> our mask over our edge list.
    eu, ei = model.graph.edge_users, model.graph.edge_items
    position = {(int(u), int(i)): k for k, (u, i) in enumerate(zip(eu, ei, strict=True))}
    m_idx = ref["masked_adj"][0]
    kept_pairs = {(int(u), int(i) - dataset.n_users) for u, i in m_idx.T.tolist() if u < dataset.n_users}  # fmt: skip
    keep = np.zeros(len(eu), dtype=bool)
    keep[[position[p] for p in kept_pairs]] = True
    model.train()
    set_kept_edges(model, keep)
    rows.append(("pruned user-item graph", _max_diff(model.graph.adj_train.to_dense(),
                                                      _dense(ref["masked_adj"], (n, n)))))  # fmt: skip

    print("\ngradients for one batch on the pruned graph:")
    users, pos, neg = ref["batch"]
    loss, _ = model.loss(Batch(users, pos, neg))
    loss.backward()
    rows.append(("BPR loss, one batch", abs(loss.item() - ref["loss"])))
    for theirs_name, our_name in names.items():
        g_ref = ref["grads"].get(theirs_name)
        g = ours[our_name].grad
        if g_ref is None and g is None:
            continue
        g = torch.zeros_like(ours[our_name]) if g is None else g
        g_ref = torch.zeros_like(g) if g_ref is None else g_ref
        # Relative to the largest gradient entry of the layer (weight and bias together): a
        # bias's gradient is a sum over items that nearly cancels (out_proj's is exactly 0 in
        # exact arithmetic, since BPR's positive and negative terms cancel and S's rows sum to
        # 1), so relative to itself it would measure float32 rounding, not a difference.
        layer = our_name.rsplit(".", 1)[0] if our_name.endswith(("weight", "bias")) else our_name
        scale = max(
            float(ref["grads"][t].abs().max())
            for t, o in names.items()
            if t in ref["grads"] and (o == our_name or o.rsplit(".", 1)[0] == layer)
        )
        print(f"  grad {our_name:38s} |theirs| max {float(g_ref.abs().max()):.2e}, "
              f"|ours - theirs| max {_max_diff(g, g_ref):.2e}")  # fmt: skip
        rows.append(
            (f"grad {our_name} (relative to the layer's)", _max_diff(g, g_ref) / (scale or 1.0))
        )

    print(f"\nlargest absolute difference, ours vs the authors' code (fail above {atol:g}):")
    bad = 0
    for name, diff in rows:
        flag = "" if diff <= atol else "  <-- differs"
        bad += bool(flag)
        print(f"  {name:44s} {diff:.2e}{flag}")
    print("same function" if not bad else f"{bad} quantities differ")
    return int(bool(bad))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    d = sub.add_parser("dump", help="with MMRec's Python: save the authors' model")
    d.add_argument("--mmrec", required=True, help="MMRec's src/ with models/crane.py")
    d.add_argument("--dataset", default="tiktok_va")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--batch-size", type=int, default=2048)
    d.add_argument("--out", required=True)
    c = sub.add_parser("compare", help="with this project's Python: check ours against the dump")
    c.add_argument("dump")
    c.add_argument("--data", default="../shared/datasets/tiktok")
    c.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args()
    if args.step == "dump":
        dump(args.mmrec, args.dataset, args.seed, str(Path(args.out).resolve()), args.batch_size)
        return 0
    return compare(args.dump, args.data, args.atol)


if __name__ == "__main__":
    sys.exit(main())
