"""``POST /v1/items`` (cold-start items over HTTP) and ``cold_slots`` in the service: the
answers, every refusal a 4xx with a one-line detail and no server path, concurrency."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the HTTP service needs the serve extra")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cranerec.serve.app as app_module
from cranerec.serve import Recommender
from cranerec.serve.app import MAX_NEW_ITEMS, create_app


def _rows(data, rows):
    return {m: data.features[m][rows].tolist() for m in data.modalities}


@pytest.fixture
def rec(make_run, tiny_data):
    return Recommender.load(make_run("freedom"), dataset=tiny_data)


@pytest.fixture
def client(rec):
    with TestClient(create_app(rec), raise_server_exceptions=False) as c:
        yield c


def test_new_items_are_served_like_the_others(client, rec, tiny_data):
    before = client.get("/v1/info").json()
    assert before["modalities"] == {"image": 64, "text": 32}
    body = {"item_ids": ["n1", "n2", "n3"], "features": _rows(tiny_data, [3, 50, 99])}
    answer = client.post("/v1/items", json=body)
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"added": 3, "n_items": 123, "n_cold_start_items": 3}
    info = client.get("/v1/info").json()
    assert info["n_items"] == 123 and info["n_cold_start_items"] == 3
    only = client.post(
        "/v1/recommend", json={"user_ids": ["3"], "k": 3, "items": ["n1", "n2", "n3"]}
    )
    assert {x["item_id"] for x in only.json()["results"][0]["items"]} == {"n1", "n2", "n3"}
    similar = client.post("/v1/similar-items", json={"item_ids": ["n2"], "k": 5})
    assert similar.status_code == 200 and len(similar.json()["results"][0]["items"]) == 5
    # the vectors are those add_items computes in Python
    np.testing.assert_array_equal(rec.item_emb[-3:], _python_vectors(rec, tiny_data, [3, 50, 99]))


def _python_vectors(rec, data, rows):
    other = Recommender.load(rec.run_dir, dataset=data)
    other.add_items(
        {m: data.features[m][rows] for m in data.modalities}, ["x", "y", "z"][: len(rows)]
    )
    return other.item_emb[-len(rows) :]


def test_cold_slots_over_http(client, rec, tiny_data):
    rows = list(range(0, 120, 6))
    ids = [f"c{r}" for r in rows]
    assert (
        client.post(
            "/v1/items", json={"item_ids": ids, "features": _rows(tiny_data, rows)}
        ).status_code
        == 201
    )
    users = [str(u) for u in range(20)]
    body = {"user_ids": users, "k": 10, "cold_slots": 2, "cold_min_z": None}
    got = client.post("/v1/recommend", json=body).json()["results"]
    expected = rec.recommend(users, k=10, cold_slots=2, cold_min_z=None)
    assert [[x["item_id"] for x in r["items"]] for r in got] == [list(r.item_ids) for r in expected]
    assert all(sum(x["item_id"] in ids for x in r["items"]) >= 2 for r in got)
    default = client.post("/v1/recommend", json={"user_ids": users, "k": 10}).json()["results"]
    assert [[x["item_id"] for x in r["items"]] for r in default] == [
        list(r.item_ids) for r in rec.recommend(users, k=10)
    ]
    new_user = client.post(
        "/v1/recommend-for-items",
        json={"item_ids": ["1"], "k": 5, "cold_slots": 5, "cold_min_z": None},
    ).json()["results"][0]["items"]
    assert all(x["item_id"] in ids for x in new_user)
    too_many = client.post("/v1/recommend", json={"user_ids": ["3"], "k": 3, "cold_slots": 4})
    assert too_many.status_code == 422 and "cold_slots" in too_many.text


def _detail(response):
    detail = response.json()["detail"]
    return detail if isinstance(detail, str) else json.dumps(detail)


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("duplicate ids", 400, "duplicate new item ids: 'n'"),
        ("trained id", 409, "already in the catalogue: '7'"),
        ("missing modality", 400, r"missing \['text'\]"),
        ("unknown modality", 400, r"unknown \['audio'\]"),
        ("narrow rows", 400, r"modality 'text': shape \(1, 5\); expected \(1, 32\)"),
        ("ragged rows", 400, "not a numeric"),
        ("too few rows", 400, r"shape \(1, 32\); expected \(2, 32\)"),
        ("beyond float32", 400, "beyond float32"),
        ("NaN", 422, "finite"),
        ("Infinity", 422, "finite"),
        ("string value", 422, "float"),
        ("too many items", 422, "item_ids"),
        ("no items", 422, "item_ids"),
        ("empty row", 422, "features"),
        ("extra field", 422, "extra"),
        ("not an object", 422, "features"),
    ],
)
def test_bad_new_items_are_4xx_with_a_one_line_detail(
    client, rec, tiny_data, case, status, message
):
    good = _rows(tiny_data, [0])
    body = {"item_ids": ["n"], "features": good}
    if case == "duplicate ids":
        body = {"item_ids": ["n", "n"], "features": _rows(tiny_data, [0, 1])}
    elif case == "trained id":
        body["item_ids"] = ["7"]
    elif case == "missing modality":
        body["features"] = {"image": good["image"]}
    elif case == "unknown modality":
        body["features"] = {**good, "audio": [[1.0]]}
    elif case == "narrow rows":
        body["features"] = {**good, "text": [good["text"][0][:5]]}
    elif case == "ragged rows":
        body = {"item_ids": ["n", "m"], "features": {**_rows(tiny_data, [0, 1])}}
        body["features"]["text"][1] = body["features"]["text"][1][:4]
    elif case == "too few rows":
        body = {"item_ids": ["n", "m"], "features": good}
        body["features"] = {"image": _rows(tiny_data, [0, 1])["image"], "text": good["text"]}
    elif case == "beyond float32":
        body["features"] = {**good, "text": [[1e39] * 32]}
    elif case in ("NaN", "Infinity"):
        text = json.dumps(body).replace(str(good["text"][0][0]), case, 1)
        response = client.post(
            "/v1/items", content=text, headers={"content-type": "application/json"}
        )
        _check_refusal(response, rec, status, message)
        return
    elif case == "string value":
        body["features"] = {**good, "text": [["0.5"] * 32]}
    elif case == "too many items":
        body = {"item_ids": [f"n{i}" for i in range(MAX_NEW_ITEMS + 1)], "features": {}}
    elif case == "no items":
        body["item_ids"] = []
    elif case == "empty row":
        body["features"] = {**good, "text": [[]]}
    elif case == "extra field":
        body["vectors"] = [[1.0]]
    elif case == "not an object":
        body["features"] = [[1.0]]
    _check_refusal(client.post("/v1/items", json=body), rec, status, message)


def _check_refusal(response, rec, status, message):
    import re

    assert response.status_code == status, response.text
    detail = _detail(response)
    assert re.search(message, detail), detail
    if isinstance(response.json()["detail"], str):
        assert "\n" not in detail
    assert str(rec.run_dir) not in response.text
    assert rec.n_items == 120  # nothing was added


def test_existing_ids_are_listed(client, tiny_data):
    body = {"item_ids": ["a", "b"], "features": _rows(tiny_data, [0, 1])}
    assert client.post("/v1/items", json=body).status_code == 201
    again = client.post(
        "/v1/items", json={"item_ids": ["c", "b", "5"], "features": _rows(tiny_data, [0, 1, 2])}
    )
    assert again.status_code == 409
    assert again.json()["existing_ids"] == ["b", "5"]


def test_models_without_content_answer_400_saying_so(make_run, tiny_data):
    rec = Recommender.load(make_run("lightgcn"), dataset=tiny_data)
    with TestClient(create_app(rec), raise_server_exceptions=False) as c:
        response = c.post("/v1/items", json={"item_ids": ["n"], "features": _rows(tiny_data, [0])})
    assert response.status_code == 400
    assert "'lightgcn' has no content path" in response.json()["detail"]


def test_a_service_that_cannot_add_items_says_so_without_paths(
    make_run, tmp_path, tiny_data, caplog
):
    run = tmp_path / "run"
    shutil.copytree(make_run("freedom"), run)
    (run / "model.pt").unlink()
    rec = Recommender.load(run, dataset=tiny_data)
    with (
        TestClient(create_app(rec), raise_server_exceptions=False) as c,
        caplog.at_level(logging.ERROR),
    ):
        response = c.post("/v1/items", json={"item_ids": ["n"], "features": _rows(tiny_data, [0])})
    assert response.status_code == 400, response.text
    assert "cannot add items" in response.json()["detail"] and str(tmp_path) not in response.text
    assert "model.pt" in caplog.text  # the log names the file


def test_a_read_only_service_refuses_new_items(rec, tiny_data):
    with TestClient(create_app(rec, allow_new_items=False)) as c:
        response = c.post("/v1/items", json={"item_ids": ["n"], "features": _rows(tiny_data, [0])})
    assert response.status_code == 403 and "read-only" in response.json()["detail"]
    assert rec.n_items == 120


def test_the_service_holds_at_most_max_cold_items(client, rec, tiny_data, monkeypatch):
    monkeypatch.setattr(app_module, "MAX_COLD_ITEMS", 3)
    ok = client.post(
        "/v1/items", json={"item_ids": ["a", "b"], "features": _rows(tiny_data, [0, 1])}
    )
    full = client.post(
        "/v1/items", json={"item_ids": ["c", "d"], "features": _rows(tiny_data, [2, 3])}
    )
    assert ok.status_code == 201 and full.status_code == 409
    assert "at most 3" in full.json()["detail"] and rec.n_items == 122


def test_a_large_body_of_new_items_is_413(client):
    rows = [[0.123456789] * 32] * 9000  # over 2 MiB of JSON
    body = {"item_ids": ["n"], "features": {"image": rows, "text": rows}}
    response = client.post("/v1/items", json=body)
    assert response.status_code == 413 and "bytes" in response.json()["detail"]


def test_adding_items_over_http_does_not_hold_up_queries(rec, tiny_data, monkeypatch):
    rec.check_cold_start()
    model, _ = rec._trained_model()
    entered, release = threading.Event(), threading.Event()
    real = model.items_from_features

    def slow(*args, **kwargs):
        entered.set()
        release.wait(timeout=10)
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "items_from_features", slow)
    with TestClient(create_app(rec)) as c, ThreadPoolExecutor(1) as pool:
        body = {"item_ids": ["slow"], "features": _rows(tiny_data, [0])}
        adding = pool.submit(c.post, "/v1/items", json=body)
        assert entered.wait(timeout=10)
        t0 = time.perf_counter()
        health = c.get("/health")
        query = c.post("/v1/recommend", json={"user_ids": ["3"], "k": 5})
        waited = time.perf_counter() - t0
        during = not adding.done()
        release.set()
        assert adding.result(timeout=20).status_code == 201
    assert health.status_code == 200 and query.status_code == 200
    assert during and waited < 5


def test_the_schema_documents_new_items(client):
    schema = client.get("/openapi.json").json()
    op = schema["paths"]["/v1/items"]["post"]
    assert {"201", "400", "403", "409", "413", "422"} <= set(op["responses"])
    assert op["responses"]["409"]["content"]["application/json"]["example"]["existing_ids"]
    model = schema["components"]["schemas"]["AddItemsRequest"]
    assert model["examples"] and all(p.get("description") for p in model["properties"].values())
    recommend = schema["components"]["schemas"]["RecommendRequest"]["properties"]
    assert recommend["cold_slots"]["description"] and recommend["cold_min_z"]["description"]
    assert "/v1/items" in client.get("/docs").text


_values = st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=3) | st.none()
_rows_st = st.lists(st.lists(_values, max_size=40), max_size=3) | _values
_bodies = st.fixed_dictionaries(
    {},
    optional={
        "item_ids": st.lists(
            st.sampled_from(["n", "m", "7", "", "x" * 300]) | st.integers(), max_size=3
        )
        | _values,
        "features": st.dictionaries(
            st.sampled_from(["image", "text", "audio", ""]), _rows_st, max_size=3
        )
        | _rows_st,
        "extra": _values,
    },
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_bodies)
def test_fuzzed_new_items_never_get_a_server_error(client, body):
    response = client.post("/v1/items", json=body)
    assert response.status_code in (201, 400, 409, 413, 422), (response.status_code, response.text)
