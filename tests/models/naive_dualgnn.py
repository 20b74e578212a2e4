"""Dense, loop-based recomputations shared by the DualGNN and DRAGON tests (both models read the
same per-modality branches and the same user co-occurrence graph)."""

import numpy as np
import torch
import torch.nn.functional as F


def dense_ahat(train):
    """D^{-1/2} A D^{-1/2} of the user-item graph, users first, as a dense float32 tensor."""
    r = train.toarray().astype(np.float64)
    n_u, n_i = r.shape
    a = np.zeros((n_u + n_i, n_u + n_i))
    a[:n_u, n_u:], a[n_u:, :n_u] = r, r.T
    deg = a.sum(1)
    d = np.where(deg > 0, deg**-0.5, 0.0)
    return torch.from_numpy(d[:, None] * a * d[None, :]).float()


def dense_user_graph(train, k, chosen):
    """W [U, U] from a loop over user pairs: each user's top-k users by shared items, weighted by
    the softmax of the counts. Among users tied at the cut the model may keep any (it draws
    them at random): ``chosen`` [U, k] are its picks, checked here to be a top-k by count."""
    items = [set(train[u].indices) for u in range(train.shape[0])]
    w = torch.zeros(len(items), len(items))
    for u, mine in enumerate(items):
        shared = {v: len(mine & theirs) for v, theirs in enumerate(items) if v != u}
        top = sorted(shared.values(), reverse=True)[:k]
        assert top[-1] > 0  # k real neighbours, no padding
        picks = [int(v) for v in chosen[u]]
        assert len(set(picks)) == k and sorted((shared[v] for v in picks), reverse=True) == top
        c = torch.tensor([float(shared[v]) for v in picks])
        w[u, picks] = torch.softmax(c, dim=0)
    return w


def dense_branches(model, data, n_layers):
    """Per modality (the model's order), the branch's (users, items): the MLP of the features
    and the preferences, row-normalised, through the dense graph, the layers summed."""
    ahat = dense_ahat(data.train)
    users, items = [], []
    for m in model.modalities:
        gcn = model.gcn[m]
        f = gcn.mlp[2](F.leaky_relu(gcn.mlp[0](torch.from_numpy(data.features[m]))))
        e = F.normalize(torch.cat([gcn.preference, f]), dim=1)
        out, layer = e, e
        for _ in range(n_layers):
            layer = ahat @ layer
            out = out + layer  # summed, not averaged
        users.append(out[: data.n_users])
        items.append(out[data.n_users :])
    return users, items


def assert_preference_loss(model, batch, users, items, reg_weight):
    """The loss DualGNN and DRAGON share, recomputed from dense (users, items): BPR in bits
    + reg_weight x (the batch users' preference L2 per modality + mean(weight_u^2))."""
    import math

    u = users[batch.user_idx]
    margin = (u * items[batch.pos_idx]).sum(-1) - (u * items[batch.neg_idx]).sum(-1)
    rank = -torch.log2(torch.sigmoid(margin)).mean()
    reg = sum((model.gcn[m].preference[batch.user_idx] ** 2).mean() for m in model.modalities)
    reg = reg + (model.weight_u**2).mean()
    loss, parts = model.loss(batch)
    torch.testing.assert_close(loss, rank + reg_weight * reg, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(parts["bpr"] * math.log(2), -F.logsigmoid(margin).mean().detach())
