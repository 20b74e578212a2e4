"""The HTTP service through the ASGI client: shapes clients rely on, 404 / 422 cases, and a
property-based fuzz of the request schema that must never produce a 5xx."""

from __future__ import annotations

import json
import re
import shutil
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi", reason="the HTTP service needs the serve extra")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cranerec.serve import Recommender
from cranerec.serve.app import MAX_IDS, create_app


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


@pytest.mark.parametrize(
    "content",
    [b'{"user_ids": ["3"], "k": \xff}', b"[" * 5000 + b"]" * 5000, b'{"k": ' + b"9" * 5000 + b"}"],
    ids=["not-utf8", "nested-5000-deep", "5000-digit-integer"],
)
def test_a_body_no_json_reader_takes_is_400_saying_what_to_send(client, content):
    response = client.post(
        "/v1/recommend", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert "could not be read as JSON: send UTF-8 JSON" in response.json()["detail"]
    assert client.get("/health").status_code == 200


def test_unknown_paths_and_methods_keep_their_status(client):
    assert client.get("/v1/nowhere").status_code == 404
    assert client.get("/v1/recommend").status_code == 405


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
    assert response.status_code in (200, 400, 404, 413, 422), (
        response.status_code,
        response.text,
    )
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


# ---------------------------------------------------------------- request size, event loop


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/recommend", {"user_ids": [str(u) for u in range(200)], "k": 1000}),
        ("/v1/recommend", {"user_ids": ["3"] * 11, "k": 1000}),
        ("/v1/similar-items", {"item_ids": [str(i) for i in range(120)], "k": 100}),
    ],
)
def test_oversized_requests_are_413_naming_the_limit(client, path, body):
    # Regression: 1,000 user_ids with k=1000 were answered (6-7 s building the answer on the
    # event loop, /health waiting behind it); ids x k is now bounded.
    response = client.post(path, json=body)
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert "10000" in detail and "k" in detail and "split" in detail


def test_too_many_ids_are_422(client):
    # Regression: up to 1,000 ids a request were accepted; the documented limit is 256.
    response = client.post("/v1/recommend", json={"user_ids": ["3"] * 257, "k": 1})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "user_ids"]
    assert client.post("/v1/recommend", json={"user_ids": ["3"] * 256, "k": 1}).status_code == 200


@pytest.mark.parametrize("chunked", [False, True])
def test_an_oversized_body_is_413_before_parsing(client, chunked):
    # Regression: request bodies had no size limit (uvicorn sets none) and were parsed on the
    # event loop whatever their size.
    body = json.dumps({"user_ids": ["3"], "k": 5, "pad": "x" * (3 * 1024 * 1024)}).encode()
    content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    response = client.post(
        "/v1/recommend", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413, response.text
    assert "bytes" in response.json()["detail"]
    small = client.post("/v1/recommend", json={"user_ids": ["3"], "k": 5})
    assert small.status_code == 200  # the limit does not touch ordinary requests


def test_a_slow_search_does_not_hold_up_other_requests(rec, monkeypatch):
    # Regression: handlers were async and searched on the event loop, so three large requests
    # kept GET /health waiting 17.5 s. A large request's search now runs in the threadpool.
    entered, released, returned = threading.Event(), threading.Event(), threading.Event()
    real = rec.recommend

    def slow(*args, **kwargs):
        entered.set()
        released.wait(timeout=5)
        returned.set()
        return real(*args, **kwargs)

    monkeypatch.setattr(rec, "recommend", slow)
    with TestClient(create_app(rec)) as c:
        pool = ThreadPoolExecutor(1)
        large = {"user_ids": [str(u) for u in range(50)], "k": 100}  # 5,000 results
        slow_answer = pool.submit(c.post, "/v1/recommend", json=large)
        assert entered.wait(timeout=10)
        t0 = time.perf_counter()
        health = c.get("/health")
        waited = time.perf_counter() - t0
        answered_while_searching = not returned.is_set()
        released.set()
        assert slow_answer.result(timeout=20).status_code == 200
        pool.shutdown()
    assert health.status_code == 200
    assert answered_while_searching and waited < 2.5


def test_info_answers_from_what_was_checked_at_load(make_run, tmp_path):
    # results.json was once validated at response time (a non-string dataset: every
    # GET /v1/info a 500); its served fields are now checked at load (test_recommender), and
    # what the service does not serve (here a NaN metric) cannot break the answer.
    run = tmp_path / "run"
    shutil.copytree(make_run("lightgcn"), run)
    results = json.loads((run / "results.json").read_text())
    results.update(valid={"recall@20": float("nan")}, seed=None)
    (run / "results.json").write_text(json.dumps(results))
    with TestClient(create_app(Recommender.load(run)), raise_server_exceptions=False) as c:
        response = c.get("/v1/info")
    assert response.status_code == 200
    assert response.json()["data_fingerprint"] == results["data_fingerprint"]


# ---------------------------------------------------------------- seen items


def test_a_request_never_shows_server_paths(make_run, tmp_path):
    # Regression: without seen.npz every request was a 400 whose detail named the run
    # directory and the data path. Such a run is now refused at load (test_recommender);
    # served without exclusion (require_seen=False), a request for it says what to send.
    run = tmp_path / "run"
    shutil.copytree(make_run("lightgcn"), run)
    (run / "seen.npz").unlink()
    rec = Recommender.load(run, require_seen=False)
    with TestClient(create_app(rec), raise_server_exceptions=False) as c:
        refused = c.post("/v1/recommend", json={"user_ids": ["3"]})
        served = c.post("/v1/recommend", json={"user_ids": ["3"], "exclude_seen": False})
        info = c.get("/v1/info").json()
    assert refused.status_code == 400 and "exclude_seen" in refused.json()["detail"]
    assert str(tmp_path) not in refused.text and "/" not in refused.json()["detail"]
    assert served.status_code == 200 and info["seen_splits"] == []


def test_user_items_over_http(client, rec):
    held = list(rec.recommend("3", k=2).item_ids)
    body = {"user_ids": ["3", "5"], "k": 4, "user_items": [held, []]}
    answer = client.post("/v1/recommend", json=body)
    assert answer.status_code == 200, answer.text
    expected = rec.recommend(["3", "5"], k=4, user_items=[held, []])
    got = [[x["item_id"] for x in r["items"]] for r in answer.json()["results"]]
    assert got == [list(r.item_ids) for r in expected] and not set(held) & set(got[0])
    mismatched = client.post("/v1/recommend", json={**body, "user_items": [held]})
    assert mismatched.status_code == 422 and "user_items" in mismatched.text
    unknown = client.post("/v1/recommend", json={**body, "user_items": [["nothing"], []]})
    assert unknown.status_code == 404 and unknown.json()["unknown_ids"] == ["nothing"]


# ---------------------------------------------------------------- docs, schema

_REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)


def test_docs_page_works_offline(client):
    # Regression: /docs was FastAPI's Swagger page, which loads its script and style from a
    # CDN: blank on a machine without internet. Without local Swagger assets the page is
    # rendered here from the schema, with nothing to fetch.
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not _REMOTE.search(page.text), _REMOTE.search(page.text)
    for path in ("/v1/recommend", "/v1/similar-items", "/v1/recommend-for-items", "/v1/info"):
        assert path in page.text
    assert "404" in page.text and "swagger-ui-bundle" in page.text  # how to get the full UI
    assert client.get("/redoc").status_code == 404  # ReDoc would need a CDN too


def test_docs_use_local_swagger_assets_when_installed(rec, tmp_path, monkeypatch):
    # With the swagger-ui-bundle package installed, Swagger UI is served from its files.
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        (tmp_path / name).write_text(f"/* {name} */")
    monkeypatch.setitem(
        sys.modules, "swagger_ui_bundle", types.SimpleNamespace(swagger_ui_path=str(tmp_path))
    )
    with TestClient(create_app(rec)) as c:
        page = c.get("/docs").text
        script = c.get("/docs/assets/swagger-ui-bundle.js")
    assert not _REMOTE.search(page), _REMOTE.search(page)
    assert "/docs/assets/swagger-ui-bundle.js" in page and "/openapi.json" in page
    assert script.status_code == 200 and "swagger-ui-bundle.js" in script.text


def test_schema_documents_errors_descriptions_and_examples(client):
    # Regression: the schema listed only 200 and FastAPI's own 422 shape; the 404 for unknown
    # ids (and the 400 / 413 answers) were undocumented, fields had no descriptions.
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    for path in ("/v1/recommend", "/v1/similar-items", "/v1/recommend-for-items"):
        op = schema["paths"][path]["post"]
        assert op["description"] and op["summary"]
        assert {"200", "400", "404", "413", "422"} <= set(op["responses"]), op["responses"]
        unknown = op["responses"]["404"]["content"]["application/json"]
        assert unknown["schema"]["$ref"].endswith("/UnknownIdsError") and unknown["example"]
        assert op["responses"]["200"]["content"]["application/json"]["example"]["results"]
        body = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        model = components[body.rsplit("/", 1)[1]]
        assert model["examples"], model
        assert all(p.get("description") for p in model["properties"].values()), model
    invalid = op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    detail = components[invalid.rsplit("/", 1)[1]]["properties"]["detail"]["items"]["$ref"]
    error = components[detail.rsplit("/", 1)[1]]["properties"]
    assert set(error) == {"type", "loc", "msg"}  # the shape the 422 answers have (no input)
    assert "HTTPValidationError" not in components  # FastAPI's shape, which we do not answer
    assert str(MAX_IDS) in schema["paths"]["/v1/recommend"]["post"]["description"]


@pytest.mark.parametrize("key", ["user_id", None])
def test_the_fast_answer_encoder_writes_what_json_dumps_means(key):
    # the service encodes 10,000-result answers with orjson: the same JSON values as json.dumps
    import json

    import numpy as np

    from cranerec.serve.app import _answer
    from cranerec.serve.recommender import RankedItems

    ids = np.array(["plain", 'quote"d', "back\\slash", "ünï😀", "tab\tnew\nline", "1e5"])
    scores = np.array([1.5, -0.25, 3.0e-8, 12345.678, 0.0, -7.0], dtype=np.float32)
    results = [RankedItems(query, ids, scores) for query in ('u"1', "7", None)]
    rows = [{key: r.query, "items": r.items()} if key else {"items": r.items()} for r in results]
    expected = json.dumps({"results": rows}, ensure_ascii=False, allow_nan=False)
    body = _answer(results, key).body
    assert json.loads(body) == json.loads(expected)
    assert [x["score"] for x in json.loads(body)["results"][0]["items"]] == scores.tolist()


def test_a_non_finite_score_is_a_server_fault_not_invalid_json():
    import numpy as np

    from cranerec.serve.app import _answer
    from cranerec.serve.recommender import RankedItems, ServeError

    bad = RankedItems("u", np.array(["a", "b"]), np.array([1.0, np.nan], dtype=np.float32))
    with pytest.raises(ServeError, match="NaN or infinite"):
        _answer([bad], "user_id")
