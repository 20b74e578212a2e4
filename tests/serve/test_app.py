"""The HTTP service through the ASGI client: shapes clients rely on, 404 / 422 cases, and a
property-based fuzz of the request schema that must never produce a 5xx."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="the HTTP service needs the serve extra")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cranerec.serve import Recommender
from cranerec.serve.app import create_app


@pytest.fixture(scope="module")
def rec(make_run):
    return Recommender.load(make_run("lightgcn"))


@pytest.fixture(scope="module")
def client(rec):
    with TestClient(create_app(rec), raise_server_exceptions=False) as c:
        yield c


def test_health_info_and_schema(client):
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/v1/info").json()
    assert info["model"] == "lightgcn" and info["n_users"] == 200 and info["n_items"] == 120
    assert info["synthetic_data"] is True and info["version"]
    assert info["cold_start"] is False  # lightgcn has no content path
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/recommend", "/v1/similar-items", "/v1/recommend-for-items"} <= set(paths)


def test_recommend_answers_in_the_documented_shape(client, rec):
    body = client.post("/v1/recommend", json={"user_ids": ["3", "5"], "k": 4}).json()
    assert [r["user_id"] for r in body["results"]] == ["3", "5"]
    for r, want in zip(body["results"], rec.recommend(["3", "5"], k=4), strict=True):
        assert [x["item_id"] for x in r["items"]] == list(want.item_ids)
        assert [x["score"] for x in r["items"]] == pytest.approx(want.scores.tolist(), rel=1e-6)
    default = client.post("/v1/recommend", json={"user_ids": ["3"]}).json()
    assert len(default["results"][0]["items"]) == 20  # k defaults to 20
    seen = client.post(
        "/v1/recommend", json={"user_ids": ["3"], "k": 120, "exclude_seen": False}
    ).json()
    assert len(seen["results"][0]["items"]) == 120
    only = client.post("/v1/recommend", json={"user_ids": ["3"], "items": ["1", "2", "4"]})
    assert {x["item_id"] for x in only.json()["results"][0]["items"]} <= {"1", "2", "4"}


def test_similar_items_and_new_users(client, rec):
    body = client.post("/v1/similar-items", json={"item_ids": ["0", "7"], "k": 3}).json()
    assert [r["item_id"] for r in body["results"]] == ["0", "7"]
    assert [x["item_id"] for x in body["results"][1]["items"]] == list(
        rec.similar_items("7", k=3).item_ids
    )
    body = client.post("/v1/recommend-for-items", json={"item_ids": ["0", "7"], "k": 5}).json()
    items = [x["item_id"] for x in body["results"][0]["items"]]
    assert items == list(rec.recommend_for_items(["0", "7"], k=5).item_ids)
    assert not {"0", "7"} & set(items)


@pytest.mark.parametrize(
    ("path", "body", "kind"),
    [
        ("/v1/recommend", {"user_ids": ["3", "nobody", "../../etc/passwd"]}, "user"),
        ("/v1/recommend", {"user_ids": ["3"], "items": ["1", "nothing"]}, "item"),
        ("/v1/similar-items", {"item_ids": ["nothing"]}, "item"),
        ("/v1/recommend-for-items", {"item_ids": ["1", "nothing"]}, "item"),
    ],
)
def test_unknown_ids_are_404_with_the_ids_named(client, path, body, kind):
    response = client.post(path, json=body)
    assert response.status_code == 404
    detail = response.json()
    unknown = [
        i
        for i in (body.get("items") or body.get("user_ids") or body["item_ids"])
        if i not in ("1", "3")
    ]
    assert detail["unknown_ids"] == unknown and detail["kind"] == kind
    assert all(repr(i) in detail["detail"] for i in unknown)


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"[]",
        b'"user_ids"',
        json.dumps({"user_ids": []}).encode(),
        json.dumps({"user_ids": [3]}).encode(),  # raw ids travel as strings
        json.dumps({"user_ids": ["3"], "k": 0}).encode(),
        json.dumps({"user_ids": ["3"], "k": 1001}).encode(),
        json.dumps({"user_ids": ["3"], "k": "20"}).encode(),
        json.dumps({"user_ids": ["3"], "k": 2.5}).encode(),
        json.dumps({"user_ids": ["3"], "exclude_seen": "no"}).encode(),
        json.dumps({"user_ids": ["3"] * 1001}).encode(),
        json.dumps({"user_ids": ["x" * 257]}).encode(),
        json.dumps({"user_ids": [""]}).encode(),
        json.dumps({"user_id": ["3"]}).encode(),  # a typo is not ignored
        json.dumps({"user_ids": ["3"], "items": []}).encode(),
        b'{"user_ids": ["3"], "k": NaN}',  # Python's JSON reader accepts these tokens
        b'{"user_ids": ["3"], "k": -Infinity}',
        b'{"user_ids": ["3"], "extra": NaN}',
        b'{"user_ids": [NaN]}',
        b'{"user_ids": ["\\ud800"]}',  # a lone surrogate: no answer could echo it
    ],
)
def test_malformed_requests_are_422(client, content):
    response = client.post(
        "/v1/recommend", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text


# ---------------------------------------------------------------- fuzz

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_ids = st.lists(
    st.sampled_from(["0", "3", "119", "199", "nobody", "", "../x", "é"]) | st.text(max_size=300),
    max_size=12,
)
_fields = {
    "user_ids": _ids | _json,
    "item_ids": _ids | _json,
    "items": st.none() | _ids | _json,
    "k": st.integers(-5, 2000) | _json,
    "exclude_seen": st.booleans() | _json,
}
_bodies = st.fixed_dictionaries({}, optional={**_fields, "extra": _json}) | _json


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(["/v1/recommend", "/v1/similar-items", "/v1/recommend-for-items"]),
    body=_bodies,
)
def test_fuzzed_requests_never_get_a_server_error(client, path, body):
    response = client.post(path, json=body)
    assert response.status_code in (200, 400, 404, 422), (response.status_code, response.text)
    if response.status_code == 200:
        results = response.json()["results"]
        k = body.get("k", 20)
        assert all(len(r["items"]) <= k for r in results)


@settings(max_examples=200, deadline=None)
@given(content=st.binary(max_size=64) | _json.map(lambda v: json.dumps(v).encode()[:-1]))
def test_fuzzed_bytes_never_get_a_server_error(client, content):
    response = client.post(
        "/v1/recommend", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 404, 422), (response.status_code, response.text)
