"""Probe the command line with bad input and count what a user would not want to see.

Each case builds a broken file or setting in a scratch directory, runs ``cranerec ...`` in a
fresh process, and is classified:

- ``ok``: exit status 2 (or 0 where the input is acceptable), no traceback, and one
  ``cranerec: error:`` line (besides warnings and argparse's usage lines);
- ``traceback``: Python's traceback reached the user;
- ``crash``: the process died from a signal (a segfault, an abort);
- ``unexpected``: exit 0 where an error was expected (a silent wrong result), the reverse, a
  message over several lines, or an internal error (exit 3: a bug caught by ``cli.main``).

    .venv/bin/python benchmarks/cli_probe.py            # every case, one line each, then counts
    .venv/bin/python benchmarks/cli_probe.py --only ckpt # the cases whose name contains "ckpt"

Needs nothing from ../shared: it trains two tiny runs on the synthetic data first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FAST = ["--set", "train.epochs=1", "train.progress=false", "train.threads=1"]


def cranerec(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    code = "import sys; from cranerec.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def write_inter(
    path: Path, rows: list[str], header: str = "userID\titemID\trating\ttimestamp\tx_label"
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{path.name}.inter").write_text("\n".join([header, *rows]) + "\n")
    return path


def good_rows(n_users: int = 30, n_items: int = 20) -> list[str]:
    rows = []
    for u in range(n_users):
        for j in range(6):
            label = 0 if j < 4 else (1 if j == 4 else 2)
            rows.append(f"{u}\t{(u * 7 + j * 3) % n_items}\t1\t{j}\t{label}")
    return rows


class Probe:
    def __init__(self, root: Path):
        self.root = root
        self.cases: list[tuple[str, object, bool]] = []

    def case(self, name: str, expect_ok: bool = False):
        def deco(fn):
            self.cases.append((name, fn, expect_ok))
            return fn

        return deco


def build_cases(p: Probe, run: Path, bpr_run: Path) -> None:
    root = p.root

    def unfinished(tag: str) -> Path:
        d = root / f"unfinished-{tag}"
        shutil.copytree(run, d)
        (d / "results.json").unlink()
        return d

    def ckpt_case(tag: str, payload: bytes | None = None, from_run: Path | None = None):
        @p.case(f"ckpt:{tag}")
        def _():
            d = unfinished(tag)
            if from_run is not None:
                shutil.copy(from_run / "checkpoint.pt", d / "checkpoint.pt")
            else:
                (d / "checkpoint.pt").write_bytes(payload)
            return ["train", "--resume", str(d)]

    good = (run / "checkpoint.pt").read_bytes()
    ckpt_case("empty", b"")
    ckpt_case("text", b"this is not a checkpoint\n")
    ckpt_case("truncated", good[: len(good) // 2])
    ckpt_case("other-model", from_run=bpr_run)

    @p.case("ckpt:foreign-torch-save")
    def _():
        import torch

        d = unfinished("foreign")
        torch.save({"hello": 1}, d / "checkpoint.pt")
        return ["train", "--resume", str(d)]

    @p.case("ckpt:list-torch-save")
    def _():
        import torch

        d = unfinished("list")
        torch.save([1, 2, 3], d / "checkpoint.pt")
        return ["train", "--resume", str(d)]

    def results_case(tag: str, text: str, cmd: str = "evaluate"):
        @p.case(f"results:{tag}:{cmd}")
        def _():
            d = root / f"results-{tag}-{cmd}"
            shutil.copytree(run, d)
            (d / "results.json").write_text(text)
            if cmd == "evaluate":
                return ["evaluate", str(d)]
            if cmd == "report":
                return ["report", str(d)]
            return ["train", "--out", str(d), *FAST]

    for cmd in ("evaluate", "train"):
        results_case("list", "[1, 2]", cmd)
        results_case("string", '"x"', cmd)
        results_case("test-number", json.dumps({"test": 5, "valid": 3}), cmd)
        results_case("truncated", '{"model": "light', cmd)
        results_case("nan-metric", '{"model": "lightgcn", "test": {"recall@20": NaN}}', cmd)

    def metrics_case(tag: str, text: str, expect_ok: bool = False):
        @p.case(f"metrics:{tag}", expect_ok)
        def _():
            d = unfinished(f"metrics-{tag}")
            (d / "metrics.jsonl").write_text(text)
            return ["train", "--resume", str(d)]

    metrics_case("list-line", "[1, 2]\n")
    metrics_case("bad-epoch", '{"epoch": "a", "loss": 1}\n')
    metrics_case("garbage", 'not json\n{"epoch": 1}\n')
    metrics_case("cut-last-line", '{"epoch": 1}\n{"epo', expect_ok=True)

    def emb_case(tag: str, make):
        @p.case(f"embeddings:{tag}")
        def _():
            d = root / f"emb-{tag}"
            shutil.copytree(run, d)
            make(d / "embeddings.npz")
            return ["evaluate", str(d)]

    emb_case("empty", lambda f: f.write_bytes(b""))
    emb_case("truncated", lambda f: f.write_bytes(f.read_bytes()[:1000]))
    emb_case("one-array", lambda f: np.savez(f, user=np.zeros((3, 4), np.float32)))

    def resized(f: Path, scale: float = 1.0, width_cut: int = 0) -> None:
        with np.load(f) as z:  # finite float32 tables whose dot products overflow at scale 1e20
            user, item = z["user_emb"] * np.float32(scale), z["item_emb"] * np.float32(scale)
        np.savez(f, user_emb=user, item_emb=item[:, width_cut:])

    def npy_as(f: Path, save) -> None:
        with open(f, "wb") as fh:
            save(fh)

    emb_case("wrong-width", lambda f: resized(f, width_cut=1))
    emb_case("overflow", lambda f: resized(f, scale=1e20))
    emb_case("npy-renamed", lambda f: npy_as(f, lambda fh: np.save(fh, np.zeros(3))))

    def mm(tag: str) -> Path:
        return write_inter(root / "data" / tag, good_rows())

    def feat_case(tag: str, make, expect_ok: bool = False):
        @p.case(f"features:{tag}", expect_ok)
        def _():
            d = mm(f"feat-{tag}")
            make(d / "image_feat.npy")
            return [
                "train",
                "--data",
                str(d),
                "--model",
                "vbpr",
                "--out",
                str(root / f"o-feat-{tag}"),
                *FAST,
            ]

    feat_case("0-d", lambda f: np.save(f, np.float32(3.0)))
    feat_case("0-byte", lambda f: f.write_bytes(b""))
    feat_case("npz-renamed", lambda f: npy_as(f, lambda fh: np.savez(fh, a=np.zeros((20, 4)))))
    feat_case("one-row-short", lambda f: np.save(f, np.ones((19, 4), np.float32)))
    feat_case("zero-width", lambda f: np.save(f, np.ones((20, 0), np.float32)))
    feat_case("nan", lambda f: np.save(f, np.full((20, 4), np.nan, np.float32)))
    feat_case(
        "object", lambda f: np.save(f, np.array([{"a": 1}] * 20, dtype=object), allow_pickle=True)
    )
    feat_case("text-file", lambda f: f.write_text("1,2,3\n"))

    def inter_case(
        tag: str,
        rows: list[str],
        header: str | None = None,
        raw: bytes | None = None,
        expect_ok=False,
    ):
        @p.case(f"inter:{tag}", expect_ok)
        def _():
            d = root / "data" / f"inter-{tag}"
            if raw is not None:
                d.mkdir(parents=True, exist_ok=True)
                (d / f"{d.name}.inter").write_bytes(raw)
            else:
                write_inter(d, rows, *([header] if header else []))
            return ["train", "--data", str(d), "--out", str(root / f"o-inter-{tag}"), *FAST]

    inter_case("huge-user-id", [*good_rows(), "999999999999\t1\t1\t0\t0"])
    inter_case("1e20-user-id", [*good_rows(), "1e20\t1\t1\t0\t0"])
    inter_case("negative-id", [*good_rows(), "-3\t1\t1\t0\t0"])
    inter_case("nan-id", [*good_rows(), "nan\t1\t1\t0\t0"])
    inter_case("NA-id", [*good_rows(), "NA\t1\t1\t0\t0"])
    inter_case("empty", [], raw=b"")
    inter_case("header-only", [])
    inter_case("bad-label", [*good_rows(), "1\t1\t1\t0\t7"])
    inter_case("missing-column", ["0\t1"], header="userID\titemID")
    inter_case("binary", [], raw=bytes(range(256)) * 10)
    bom = (
        "\ufeff" + "userID\titemID\trating\ttimestamp\tx_label\n" + "\n".join(good_rows()) + "\n"
    ).encode()
    inter_case("utf8-bom", [], raw=bom, expect_ok=True)

    @p.case("matrices:1e8-users")
    def _():
        import pickle

        import scipy.sparse as sp

        d = root / "data" / "big-matrices"
        d.mkdir(parents=True, exist_ok=True)
        m = sp.csr_matrix((np.ones(1), (np.array([0]), np.array([0]))), shape=(10**8, 10))
        for fname in ("trnMat.pkl", "valMat.pkl", "tstMat.pkl"):
            with open(d / fname, "wb") as f:
                pickle.dump(m, f)
        return [
            "train",
            "--data",
            str(d),
            "--format",
            "matrices",
            "--out",
            str(root / "o-big"),
            *FAST,
        ]

    def setting_case(tag: str, *argv: str, expect_ok: bool = False):
        @p.case(f"setting:{tag}", expect_ok)
        def _():
            return ["train", *argv, "--out", str(root / f"o-set-{tag}"), *FAST]

    setting_case("model=5", "--set", "model=5")
    setting_case("lr=nan", "--set", "train.lr=nan")
    setting_case("lr=inf", "--set", "train.lr=inf")
    setting_case("reg=nan", "--set", "model.reg_weight=nan")
    setting_case("reg=-1", "--set", "model.reg_weight=-1")
    setting_case("budget=nan", "--set", "train.time_budget_s=nan")
    setting_case("split_ratios=nan", "--set", "data.split_ratios=[nan,0.1,0.1]")
    setting_case("emb=0", "--set", "model.embedding_dim=0")
    setting_case("crane-temp=inf", "--model", "crane", "--set", "model.temperature=inf")
    setting_case("crane-beta=-1", "--model", "crane", "--set", "model.beta=-1")
    setting_case("no-equals", "--set", "train.lr")
    setting_case("seed=abc", "--seed", "abc")
    setting_case("seed=-1", "--seed", "-1")
    setting_case("seed=1e20", "--seed", "100000000000000000000")
    setting_case("seeds-dup", "--seeds", "1", "1")
    setting_case("synthetic-with-data", "--format", "synthetic", "--data", str(root))
    setting_case(
        "set-swallows-positional", "--set", "train.epochs=1", "--model", "bpr", expect_ok=True
    )

    @p.case("setting:yaml-preset-list")
    def _():
        f = root / "preset.yaml"
        f.write_text("model: {name: lightgcn}\npreset: [a]\n")
        return ["train", "--config", str(f), "--out", str(root / "o-yaml"), *FAST]

    @p.case("setting:yaml-not-mapping")
    def _():
        f = root / "list.yaml"
        f.write_text("- 1\n- 2\n")
        return ["train", "--config", str(f), "--out", str(root / "o-yaml2"), *FAST]

    @p.case("setting:yaml-broken")
    def _():
        f = root / "broken.yaml"
        f.write_text("model: {name: [\n")
        return ["train", "--config", str(f), "--out", str(root / "o-yaml3"), *FAST]

    @p.case("run:empty-config-yaml")
    def _():
        d = root / "empty-config"
        shutil.copytree(run, d)
        (d / "config.yaml").write_text("")
        return ["evaluate", str(d)]

    @p.case("convert:name-escapes-dst")
    def _():
        return [
            "data",
            "convert",
            str(mm("conv")),
            str(root / "conv-out"),
            "--to",
            "matrices",
            "--name",
            "../../x",
        ]

    @p.case("serve:port-99999")
    def _():
        return ["serve", str(run), "--port", "99999"]

    @p.case("recommend:bad-k")
    def _():
        return ["recommend", str(run), "--k", "-5", "--out", str(root / "recs.csv")]


def classify(proc: subprocess.CompletedProcess, expect_ok: bool) -> str:
    if proc.returncode < 0:
        return "crash"
    if "Traceback" in proc.stderr:
        return "traceback"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    errors = [ln for ln in lines if ln.startswith("cranerec") and ": error:" in ln]
    if expect_ok:
        return "ok" if proc.returncode == 0 else "unexpected"
    if proc.returncode == 0:
        return "unexpected"
    usage = [ln for ln in lines if ln.startswith("usage:") or ln.startswith(" ")]  # argparse's
    if proc.returncode == 2 and len(errors) == 1 and len(lines) == 1 + len(usage):
        return "ok"
    return "unexpected"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run the cases whose name contains this")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cranerec-probe-"))
    env_note = f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
    try:
        run, bpr_run = root / "run", root / "bpr-run"
        for d, model in ((run, "lightgcn"), (bpr_run, "bpr")):
            proc = cranerec("train", "--model", model, "--out", str(d), *FAST, cwd=root)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                return 1
        p = Probe(root)
        build_cases(p, run, bpr_run)
        counts: dict[str, int] = {}
        for name, make, expect_ok in p.cases:
            if args.only not in name:
                continue
            argv = make()
            t = time.perf_counter()
            proc = cranerec(*argv, cwd=root)
            kind = classify(proc, expect_ok)
            counts[kind] = counts.get(kind, 0) + 1
            last = (proc.stderr.strip().splitlines() or [""])[-1][:160]
            print(
                f"{kind:10s} {name:36s} rc={proc.returncode:<3d} {time.perf_counter() - t:5.1f}s  {last}"
            )
        print(
            f"\n{sum(counts.values())} cases ({env_note}): "
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        )
        return 0 if set(counts) <= {"ok"} else 1
    finally:
        if args.keep:
            print(f"scratch: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
