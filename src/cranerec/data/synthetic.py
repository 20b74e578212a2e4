"""The built-in default dataset: SYNTHETIC, seeded and small, with planted structure.

Items belong to latent topics; users prefer a few topics. Interactions are drawn from a
user-topic affinity plus item popularity, so collaborative signal exists, but most items are in
a long tail with few interactions, where only the item features (noisy views of the item's latent
vector) tell which topic they belong to. Two modalities: ``image`` (informative) and ``text``
(weaker). Nothing here is real data.
"""

from __future__ import annotations

import numpy as np

from cranerec.data.dataset import Dataset
from cranerec.data.split import matrices_from_labels, split_per_user


def make_synthetic(
    n_users: int = 1500,
    n_items: int = 800,
    n_topics: int = 16,
    latent_dim: int = 24,
    mean_interactions: float = 18.0,
    seed: int = 0,
    split_seed: int = 9,
    widths: dict[str, int] | None = None,
) -> Dataset:
    """Generate the synthetic multimodal dataset (deterministic for a given seed).

    ``widths``: feature width of each modality, ``image`` (informative) and ``text`` (weaker);
    default 64 and 32. Memory stays O(block x n_items) for any shape (users are drawn in blocks),
    so shapes like Amazon-Baby's (19,445 x 7,050) build in seconds."""
    widths = {"image": 64, "text": 32, **(widths or {})}
    rng = np.random.default_rng(seed)
    topic_centres = rng.normal(size=(n_topics, latent_dim))
    item_topic = rng.integers(0, n_topics, n_items)
    item_latent = topic_centres[item_topic] + 0.5 * rng.normal(size=(n_items, latent_dim))
    popularity = rng.pareto(1.5, n_items) + 1.0
    popularity /= popularity.sum()

    # Each user mixes 1-3 topics.
    user_topics = np.zeros((n_users, n_topics))
    for u in range(n_users):
        chosen = rng.choice(n_topics, size=rng.integers(1, 4), replace=False)
        user_topics[u, chosen] = rng.dirichlet(np.ones(len(chosen)))
    user_latent = user_topics @ topic_centres + 0.3 * rng.normal(size=(n_users, latent_dim))

    sizes = np.clip(rng.poisson(mean_interactions - 5, n_users) + 5, 5, n_items // 2)
    rows, cols = [], []
    block = 2048
    for start in range(0, n_users, block):
        stop = min(start + block, n_users)
        affinity = user_latent[start:stop] @ item_latent.T / np.sqrt(latent_dim)  # [B, I]
        logits = 2.0 * affinity + 0.5 * np.log(popularity)[None, :]
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        for u in range(start, stop):
            items = rng.choice(n_items, size=sizes[u], replace=False, p=probs[u - start])
            rows.append(np.full(sizes[u], u))
            cols.append(items)
    users = np.concatenate(rows)
    items = np.concatenate(cols)

    w_img, w_txt = widths["image"], widths["text"]
    image = item_latent @ rng.normal(size=(latent_dim, w_img)) + 0.5 * rng.normal(
        size=(n_items, w_img)
    )
    text = np.eye(n_topics)[item_topic] @ rng.normal(size=(n_topics, w_txt)) + 1.5 * rng.normal(
        size=(n_items, w_txt)
    )

    labels = split_per_user(users, split_seed, [0.8, 0.1, 0.1])
    splits = matrices_from_labels(users, items, labels, n_users, n_items)
    return Dataset(
        name="synthetic",
        user_ids=np.arange(n_users),
        item_ids=np.arange(n_items),
        features={"image": image.astype(np.float32), "text": text.astype(np.float32)},
        synthetic=True,
        **splits,
    )
