"""LGMRec's parity gap: the model, the training loop or the initial weights? Two hybrids that
MMRec's own loop trains (its sampler, optimiser, early stopping and evaluator), written into an
MMRec checkout (outside this project; nothing of MMRec is copied here) as two model files:

- ``OurLGMRec``: this project's ``lgmrec`` module (its ``reference`` preset) inside MMRec's
  loop, from the initial weights ``cranerec train --seeds S`` draws, evaluated as ours is (the
  noise-free softmax);
- ``MMLGMRecOurInit``: MMRec's own LGMRec, from the same initial weights (ours, copied in after
  MMRec built it), evaluated as MMRec evaluates it (a Gumbel sample at every evaluation).

Against MMRec's own run (its model, its initial weights) and ours (our model and loop) on the
same seed, these say which of the three parts the runs by seed follow::

    .venv/bin/python benchmarks/lgmrec_swap.py install --mmrec <mmrec>/src --data ../shared/datasets/tiktok

then, from ``<mmrec>/src`` with MMRec's Python, for each MODEL and seed S::

    python -c "from utils.quick_start import quick_start; quick_start(model='MODEL',
        dataset='tiktok', config_dict={'gpu_id': 0, 'seed': [S]}, save_model=False)"

and read each log with ``.venv/bin/python benchmarks/mmrec_log.py LOG``. The hybrids import
this project from ``src/`` and the data from ``--data`` (the same files MMRec's ``tiktok`` folder
was converted from, so the ids agree; they check the counts).

The other way round, ours from MMRec's initial weights, with our loop: save the weights MMRec's
``quick_start`` draws for seed S (MMRec's Python), then train ours from them (ours)::

    PYTHONPATH=<stubs> /path/to/mmrec-venv/bin/python benchmarks/lgmrec_swap.py mmrec-init \
        --mmrec <mmrec>/src --seed S --out /tmp/lgmrec-init-S.pt
    .venv/bin/python benchmarks/lgmrec_swap.py train --init /tmp/lgmrec-init-S.pt -- \
        --data ../shared/datasets/tiktok --seeds S --threads 1 --out runs/lgmrec-from-mmrec-init

(``train`` passes everything after ``--`` to ``cranerec train --model lgmrec --preset
reference``; the run resumes as any other.) ``plot --curve LABEL RUN_DIR_OR_MMREC_LOG ... --out
PNG`` draws the validation curves in one panel and prints them at a few epochs.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from lgmrec_vs_mmrec import NAMES, SCALARS  # MMRec's parameter -> ours; its one-point yaml keys

HEADER = '''# Written by cranerec's benchmarks/lgmrec_swap.py: a hybrid for the LGMRec parity check.
import sys

sys.path.insert(0, {src!r})
import torch
from cranerec.data.loaders import DataConfig, load_dataset
from cranerec.models.base import Batch
from cranerec.models.lgmrec import LGMRec as Ours
from cranerec.train import build_config
from cranerec.train.trainer import seed_everything


def ours_as_cranerec_draws_it(seed, n_users, n_items):
    """cranerec's lgmrec, built as ``cranerec train --seeds seed`` builds it."""
    data = load_dataset(DataConfig(path={data!r}))
    if (data.n_users, data.n_items) != (n_users, n_items):
        raise SystemExit(f"{data!r}: {{data.n_users}} x {{data.n_items}}, MMRec has "
                         f"{{n_users}} x {{n_items}}: not the same data")
    seed_everything(seed)
    return Ours(data, build_config(model="lgmrec", preset="reference").model)
'''

OURS = '''
from common.abstract_recommender import GeneralRecommender


class OurLGMRec(GeneralRecommender):
    """cranerec's lgmrec inside MMRec's training loop."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.inner = ours_as_cranerec_draws_it(config["seed"], self.n_users, self.n_items)

    def calculate_loss(self, interaction):
        batch = Batch(user_idx=interaction[0], pos_idx=interaction[1], neg_idx=interaction[2])
        return self.inner.loss(batch)[0]

    def full_sort_predict(self, interaction):
        users, items = self.inner()
        return users[interaction[0]] @ items.T
'''

THEIRS = '''
from models.lgmrec import LGMRec


class MMLGMRecOurInit(LGMRec):
    """MMRec's LGMRec from the initial weights cranerec draws for the same seed."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        ours = ours_as_cranerec_draws_it(config["seed"], self.n_users, self.n_items)
        second = ours.modalities[1]  # MMRec's t_feat slot
        theirs, init = dict(self.named_parameters()), dict(ours.named_parameters())
        with torch.no_grad():
            for name, our_name in {names!r}.items():
                theirs[name].copy_(init[our_name.format(second=second)])
'''


def _require_checkout(mmrec_src: Path) -> None:
    if not (mmrec_src / "models" / "lgmrec.py").exists():
        raise SystemExit(f"{mmrec_src}: no models/lgmrec.py (give MMRec's src/ folder)")


def install(mmrec_src: Path, data: Path) -> None:
    """Write the two hybrids (and their yaml: LGMRec's) into the MMRec checkout."""
    _require_checkout(mmrec_src)
    if not data.exists():
        raise SystemExit(f"{data}: no such data folder (give the folder MMRec's data came from)")
    src = str(Path(__file__).resolve().parents[1] / "src")
    header = HEADER.format(src=src, data=str(data.resolve()))
    for name, body in (("OurLGMRec", OURS), ("MMLGMRecOurInit", THEIRS.format(names=NAMES))):
        (mmrec_src / "models" / f"{name.lower()}.py").write_text(header + body)
        yaml = mmrec_src / "configs" / "model"
        shutil.copyfile(yaml / "LGMRec.yaml", yaml / f"{name}.yaml")
        print(f"wrote {mmrec_src / 'models' / (name.lower() + '.py')} and {name}.yaml")


def mmrec_init(mmrec_src: Path, dataset: str, seed: int, out: Path) -> None:
    """With MMRec's Python: save the initial weights MMRec's LGMRec draws for ``seed``."""
    import torch
    from _mmrec import build_mmrec_model

    _require_checkout(mmrec_src)
    out = out.resolve()
    _, _, model = build_mmrec_model(str(mmrec_src), "LGMRec", dataset, seed, 2048, SCALARS)
    init = {k: v.detach().clone() for k, v in model.named_parameters() if k in NAMES}
    torch.save(
        {"seed": seed, "n_users": model.n_users, "n_items": model.n_items, "init": init}, out
    )
    print(f"saved MMRec's seed-{seed} initial LGMRec weights to {out}")


def train_from(init_file: Path, cli_args: list[str]) -> int:
    """``cranerec train --model lgmrec --preset reference CLI_ARGS`` with MMRec's initial
    weights copied into the model after it is built (a resumed run then loads its checkpoint)."""
    import torch

    import cranerec.train.run as run
    from cranerec.cli.entry import main as cranerec
    from cranerec.models.lgmrec import LGMRec

    if not init_file.is_file():
        raise SystemExit(f"{init_file}: not found (write it with the mmrec-init step)")
    saved = torch.load(init_file, weights_only=True)

    class FromMMRecInit(LGMRec):
        def __init__(self, dataset, config):
            super().__init__(dataset, config)
            if (self.n_users, self.n_items) != (saved["n_users"], saved["n_items"]):
                raise SystemExit(f"{init_file}: weights for another dataset's shape")
            ours = dict(self.named_parameters())
            with torch.no_grad():
                for theirs, name in NAMES.items():
                    ours[name.format(second=self.modalities[1])].copy_(saved["init"][theirs])
            print(f"lgmrec starts from MMRec's seed-{saved['seed']} initial weights ({init_file})")

    run.get_model_class = lambda name: FromMMRecInit
    return cranerec(["train", "--model", "lgmrec", "--preset", "reference", *cli_args])


def plot(curves: list[tuple[str, str]], out: Path, title: str) -> None:
    """One panel of validation Recall@20 per epoch, each curve a run directory of ours or an
    MMRec log (epochs from 1 on both; ``parity_curves.py`` reads them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from parity_curves import mmrec, ours

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, source in curves:
        path = Path(source)
        curve = ours(path) if path.is_dir() else mmrec(path)
        best = max(range(len(curve)), key=curve.__getitem__)
        (line,) = ax.plot(range(1, len(curve) + 1), curve, lw=1.1, label=f"{label} "
                          f"(best {curve[best]:.4f} @ {best + 1} of {len(curve)})")  # fmt: skip
        ax.plot([best + 1], [curve[best]], "o", color=line.get_color(), ms=4)
        print(f"{label}: best {curve[best]:.4f} at epoch {best + 1} of {len(curve)}; at epochs "
              + ", ".join(f"{e}: {curve[e - 1]:.4f}" for e in (10, 30, 50, 70, 90, 110)
                          if e <= len(curve)))  # fmt: skip
    ax.set(xlabel="epoch", ylabel="valid Recall@20", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    i = sub.add_parser("install", help="write the two hybrids into an MMRec checkout")
    i.add_argument("--mmrec", required=True, type=Path, help="MMRec's src/ folder")
    i.add_argument("--data", default="../shared/datasets/tiktok", type=Path)
    m = sub.add_parser("mmrec-init", help="with MMRec's Python: save its initial weights")
    m.add_argument("--mmrec", required=True, type=Path, help="MMRec's src/ folder")
    m.add_argument("--dataset", default="tiktok")
    m.add_argument("--seed", type=int, required=True)
    m.add_argument("--out", required=True, type=Path)
    t = sub.add_parser("train", help="train ours from a saved MMRec initialisation")
    t.add_argument("--init", required=True, type=Path)
    t.add_argument("cli", nargs=argparse.REMAINDER, help="-- then cranerec train's arguments")
    c = sub.add_parser("plot", help="validation curves of runs and MMRec logs in one panel")
    c.add_argument("--curve", nargs=2, action="append", required=True, metavar=("LABEL", "SRC"))
    c.add_argument("--out", required=True, type=Path)
    c.add_argument("--title", default="LGMRec on TikTok: which part do the runs follow?")
    args = p.parse_args()
    if args.step == "plot":
        plot(args.curve, args.out, args.title)
    elif args.step == "install":
        install(args.mmrec, args.data)
    elif args.step == "mmrec-init":
        mmrec_init(args.mmrec, args.dataset, args.seed, args.out)
    else:
        raise SystemExit(train_from(args.init, [a for a in args.cli if a != "--"]))


if __name__ == "__main__":
    main()
