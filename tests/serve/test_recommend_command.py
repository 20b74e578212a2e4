"""``cranerec recommend``: batched output files with the same numbers as the Python API."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cranerec.cli import main
from cranerec.serve import Recommender


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_recommend_writes_what_the_api_answers(make_run, tmp_path, suffix, capsys):
    run = make_run("lightgcn")
    out = tmp_path / f"recs{suffix}"
    argv = ["recommend", str(run), "--k", "7", "--out", str(out), "--batch-size", "64", "--quiet"]
    assert main(argv) == 0
    assert "1,400 recommendations for 200 users" in capsys.readouterr().out
    table = (
        pd.read_parquet(out)
        if suffix == ".parquet"
        else pd.read_csv(out, dtype={"user_id": str, "item_id": str})
    )
    assert list(table.columns) == ["user_id", "rank", "item_id", "score"]
    rec = Recommender.load(run)
    expected = rec.recommend(rec.user_ids.tolist(), k=7)
    for (user, rows), want in zip(table.groupby("user_id", sort=False), expected, strict=True):
        assert user == want.query
        assert rows["rank"].tolist() == list(range(1, 8))
        assert rows["item_id"].tolist() == list(want.item_ids)
        if suffix == ".parquet":
            np.testing.assert_array_equal(rows["score"].to_numpy(), want.scores)
        else:
            np.testing.assert_allclose(rows["score"].to_numpy(), want.scores, rtol=1e-6)


def test_recommend_for_a_user_file_names_unknown_users(make_run, tmp_path, capsys):
    run = make_run("lightgcn")
    users = tmp_path / "users.txt"
    users.write_text("3\n\n5\n")
    out = tmp_path / "r.csv"
    assert main(["recommend", str(run), "--users", str(users), "--out", str(out), "--quiet"]) == 0
    table = pd.read_csv(out, dtype={"user_id": str})
    assert table["user_id"].unique().tolist() == ["3", "5"] and len(table) == 40
    users.write_text("3\nghost\n")
    assert (
        main(["recommend", str(run), "--users", str(users), "--out", str(tmp_path / "x.csv")]) == 2
    )
    assert "unknown user id: 'ghost'" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    assert main(["recommend", str(run), "--out", str(tmp_path / "x.json")]) == 2
    assert "write .parquet or .csv" in capsys.readouterr().err


def test_serve_starts_uvicorn_on_the_given_address(make_run, monkeypatch, capsys):
    uvicorn = pytest.importorskip("uvicorn", reason="the HTTP service needs the serve extra")
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    assert main(["serve", str(make_run("lightgcn")), "--port", "8123"]) == 0
    ((app, kw),) = calls
    assert kw["host"] == "127.0.0.1" and kw["port"] == 8123
    assert {"/v1/recommend", "/health"} <= {r.path for r in app.routes}
    assert "serving lightgcn" in capsys.readouterr().out
    assert main(["serve", "/no/such/run"]) == 2


def test_serve_hides_what_it_loaded_from_the_garbage_collector(make_run, monkeypatch):
    # Regression: a full collection walked every object of torch and the id tables (148 ms on
    # Amazon Sports), set off by the 10,000 dicts of a large answer: small requests stalled
    # behind it (benchmarks/serve_gc_pause.py)
    import gc

    uvicorn = pytest.importorskip("uvicorn", reason="the HTTP service needs the serve extra")
    frozen = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: frozen.append(gc.get_freeze_count()))
    try:
        assert main(["serve", str(make_run("lightgcn"))]) == 0
    finally:
        gc.unfreeze()
    assert frozen[0] > 0


def test_serve_on_a_busy_port_or_an_unknown_host_is_one_line(make_run, monkeypatch, capsys):
    import socket

    uvicorn = pytest.importorskip("uvicorn", reason="the HTTP service needs the serve extra")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: pytest.fail("must not start"))
    run = str(make_run("lightgcn"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", run, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--port {port}: cannot listen on 127.0.0.1:{port}" in err
    assert main(["serve", run, "--host", "no-such-host.invalid"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--host no-such-host.invalid: not a name or address" in err
