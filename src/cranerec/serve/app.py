"""The HTTP service: ``create_app(recommender)`` builds a FastAPI app around a loaded
``Recommender`` (no globals; ``cranerec serve RUN_DIR`` runs it with uvicorn).

Endpoints (raw ids travel as strings; every list answer has the same shape):

    GET  /health                  {"status": "ok"}
    GET  /v1/info                 model, dataset, counts, versions
    POST /v1/recommend            {"user_ids": ["u1", ...], "k": 20, "exclude_seen": true,
                                   "items": null | ["i1", ...],
                                   "user_items": null | [["i4", ...], ...],  (one per user)
                                   "cold_slots": 0, "cold_min_z": 1.0}
                               -> {"results": [{"user_id": "u1",
                                                "items": [{"item_id": "i9", "score": 1.23}, ...]}]}
    POST /v1/similar-items        {"item_ids": ["i1", ...], "k": 20}
                               -> {"results": [{"item_id": "i1", "items": [...]}]}
    POST /v1/recommend-for-items  {"item_ids": ["i1", ...], "k": 20, "exclude_seen": true,
                                   "cold_slots": 0, "cold_min_z": 1.0}
                               -> {"results": [{"items": [...]}]}   (one new user)
    POST /v1/items                {"item_ids": ["n1", ...],
                                   "features": {"image": [[0.1, ...], ...], "text": [...]}}
                               -> 201 {"added": 1, "n_items": ..., "n_cold_start_items": ...}

``POST /v1/items`` adds cold-start items from their features (one row per item for every
modality of the run; ``GET /v1/info``'s ``modalities`` gives the widths once the training data
is loaded). Refusals are 4xx with a one-line ``detail``: 400 for features the run cannot take,
a model without a content path, or a service that lacks the weights or training data (logged,
no path shown); 409 with ``existing_ids`` for ids already served, or beyond ``MAX_COLD_ITEMS``;
403 on a read-only service (``create_app(..., allow_new_items=False)``); 422 for types, NaN or
infinity, over ``MAX_NEW_ITEMS`` items. The vectors are computed in the threadpool while
queries go on; only their append holds queries back. ``cold_slots`` / ``cold_min_z`` reserve
places for cold-start items in a ranking (``ColdOptions`` in ``cold_start.py``).

Limits (constants of ``schema.py``, importable from here too; documented in the OpenAPI schema
and ``docs/serving.md``): at most ``MAX_IDS`` (256) query ids (``user_ids``, or ``item_ids`` of
similar-items), ``MAX_ITEM_LIST`` (1000) ids in an item list (``items``, ``item_ids`` of
recommend-for-items), ``k`` in 1..``MAX_K`` (1000): beyond these, 422. At most ``MAX_RESULTS``
(10,000) results a request (query ids x k) and ``MAX_BODY_BYTES`` (2 MiB) of request body:
beyond these, 413 with a one-line ``detail`` saying what to change. A bigger job is ``cranerec
recommend`` (a file).

Validation: fields are typed strictly (ids are strings of 1..256 characters, no unknown
fields): anything else is 422, as is malformed JSON (``{"detail": [{"type", "loc", "msg"},
...]}``; the input is not echoed). Unknown ids are 404 with ``{"detail": ..., "kind": ...,
"unknown_ids": [...]}``. A request the loaded run cannot answer as asked (``exclude_seen`` on a
service loaded without seen items) is 400 with a one-line ``detail``. No request reads a file:
the recommender is loaded (and its files checked) before the app is built, and no answer names
a server path (any other ``ServeError`` is logged and answered 500 without its message). The
OpenAPI schema is served at ``/openapi.json``, documented at ``/docs`` without the network
(see ``docs_page.py``).

A request's search and the encoding of its answer run in FastAPI's threadpool (faiss releases
the GIL; the answer's rows are built one at a time, handing the GIL over between rows, and
encoded by orjson): one
large request does not hold up ``/health`` or small requests. A small one (at most
``INLINE_SCAN`` vector entries scanned, about 1 ms, and ``INLINE_RESULTS`` results) runs on the
event loop, where it costs less than the hop to a worker thread. Answers are plain dicts
encoded to JSON, not validated item by item against the response models, which describe them
in the schema only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cranerec._version import __version__
from cranerec.serve.docs_page import add_docs
from cranerec.serve.errors import ItemExistsError, RequestError, ServeError, UnknownIdError
from cranerec.serve.query import RankedItems
from cranerec.serve.recommender import Recommender
from cranerec.serve.schema import (
    ERROR_ANSWERS,
    ITEMS_EXAMPLE,
    MAX_BODY_BYTES,
    MAX_COLD_ITEMS,
    MAX_FEATURE_WIDTH,
    MAX_ID_LENGTH,
    MAX_IDS,
    MAX_ITEM_LIST,
    MAX_K,
    MAX_MODALITIES,
    MAX_NEW_ITEMS,
    MAX_RESULTS,
    AddItemsRequest,
    AddItemsResponse,
    ErrorResponse,
    ExistingIdsError,
    HealthResponse,
    InfoResponse,
    RecommendForItemsRequest,
    RecommendForItemsResponse,
    RecommendRequest,
    RecommendResponse,
    SimilarItemsRequest,
    SimilarItemsResponse,
    example_of,
    ok_answers,
)

__all__ = [
    "INLINE_RESULTS",
    "INLINE_SCAN",
    "MAX_BODY_BYTES",
    "MAX_COLD_ITEMS",
    "MAX_FEATURE_WIDTH",
    "MAX_IDS",
    "MAX_ID_LENGTH",
    "MAX_ITEM_LIST",
    "MAX_K",
    "MAX_MODALITIES",
    "MAX_NEW_ITEMS",
    "MAX_RESULTS",
    "TooLargeError",
    "create_app",
]

log = logging.getLogger(__name__)

#: A search runs on the event loop when it scans at most this many vector entries (queries x
#: items x width, ~1 ms) and returns at most INLINE_RESULTS results; otherwise in the threadpool.
INLINE_SCAN = 2_000_000
INLINE_RESULTS = 100


class TooLargeError(Exception):
    """A request over a size limit: 413 with this message."""


def _answer(results: list[RankedItems], key: str | None) -> Response:
    """``{"results": [...]}`` as JSON, one row per ranked list (``key``: the name of its query
    field, None for none), encoded by orjson (a 10,000-result answer in about 4 ms, a quarter of
    what the json module takes). Rows are built one at a time, handing the GIL over after each
    row of a multi-row answer: a thread that holds it by computation passes it on only every
    ``sys.getswitchinterval()`` (5 ms), which would keep the event loop, and every small
    request, waiting behind a large one."""
    rows = []
    for r in results:
        if not np.isfinite(r.scores).all():
            raise ServeError("the model scored an item NaN or infinite; check the run's embeddings")
        rows.append({key: r.query, "items": r.items()} if key else {"items": r.items()})
        if len(results) > 1:
            time.sleep(0)  # let the event loop run now, not after the switch interval
    return Response(orjson.dumps({"results": rows}), media_type="application/json")


def _check_results(n_queries: int, k: int, what: str) -> None:
    if n_queries * k > MAX_RESULTS:
        raise TooLargeError(
            f"the request asks for {n_queries} {what} x k={k} = {n_queries * k} results; at most "
            f"{MAX_RESULTS} a request: lower k or split {what} across requests"
        )


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 before the app
    parses it (uvicorn sets no limit; JSON parsing and validation run on the event loop)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(send)
            return
        messages: list[Message] = []
        size = 0
        while True:  # read the body here (bounded), then hand it to the app
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._too_large(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            status_code=413,
            content={"detail": f"request body over {self.limit} bytes: send fewer ids a request"},
        )
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:  # pragma: no cover - a plain response never reads
    return {"type": "http.disconnect"}


def create_app(recommender: Recommender, *, allow_new_items: bool = True) -> FastAPI:
    """A FastAPI app answering from ``recommender`` (see the module docstring).
    ``allow_new_items=False``: ``POST /v1/items`` answers 403 (a read-only service)."""
    app = FastAPI(
        title="cranerec",
        version=__version__,
        description=(
            f"Recommendations from a trained {recommender.config.model_name} run. Raw ids "
            f"travel as strings. Limits: {MAX_IDS} query ids and {MAX_ITEM_LIST} ids in an "
            f"item list (422 beyond), k <= {MAX_K} (422), {MAX_RESULTS} results (ids x k) and "
            f"{MAX_BODY_BYTES} bytes of body a request (413)."
        ),
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: see docs_page
        redoc_url=None,
    )
    app.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES)
    add_docs(app)

    _add_error_answers(app)
    _add_queries(app, recommender)
    _add_items(app, recommender, allow_new_items)
    return app


def _add_error_answers(app: FastAPI) -> None:
    """What each error becomes: 422, 413, 404, 409, 400, or a logged 500."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the offending input, which may be NaN or Infinity (Python's
        # JSON reader accepts them) and then cannot be written as JSON: a 500. Location,
        # message and type say what is wrong without it.
        errors = [
            {"type": str(e.get("type", "")), "loc": [str(x) for x in e.get("loc", ())],
             "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]  # fmt: skip
        return JSONResponse(status_code=422, content={"detail": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            # FastAPI's words for a body its JSON reader gave up on without a JSONDecodeError
            # (not UTF-8, nested too deep, an integer of thousands of digits)
            detail = ("the request body could not be read as JSON: send UTF-8 JSON of the "
                      "documented shape (see /docs)")  # fmt: skip
        return JSONResponse(
            status_code=exc.status_code, content={"detail": detail},
            headers=getattr(exc, "headers", None),
        )  # fmt: skip

    @app.exception_handler(TooLargeError)
    async def _too_large(request: Request, exc: TooLargeError) -> JSONResponse:
        return JSONResponse(status_code=413, content={"detail": str(exc)})

    @app.exception_handler(UnknownIdError)
    async def _unknown(request: Request, exc: UnknownIdError) -> JSONResponse:
        return JSONResponse(
            status_code=404,
            content={"detail": str(exc), "kind": exc.kind, "unknown_ids": exc.ids[:MAX_ITEM_LIST]},
        )

    @app.exception_handler(ItemExistsError)
    async def _exists(request: Request, exc: ItemExistsError) -> JSONResponse:
        return JSONResponse(
            status_code=409,
            content={"detail": str(exc), "existing_ids": exc.ids[:MAX_NEW_ITEMS]},
        )

    @app.exception_handler(RequestError)
    async def _bad_request(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.exception_handler(ServeError)
    async def _server_fault(request: Request, exc: ServeError) -> JSONResponse:
        # Not the request's fault (the run's files are checked at load, so none is expected):
        # the message may name server paths, so it goes to the log, not to the client.
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(
            status_code=500, content={"detail": "internal error: the server log says more"}
        )


def _add_queries(app: FastAPI, recommender: Recommender) -> None:
    """``/health``, ``/v1/info`` and the three queries."""

    @app.get("/health", response_model=HealthResponse)
    async def health() -> dict:
        """Liveness: answers as soon as the service runs."""
        return {"status": "ok"}

    @app.get("/v1/info", response_model=InfoResponse)
    async def info() -> JSONResponse:
        """The model, its training data, counts and versions (checked when the run loaded)."""
        return JSONResponse(recommender.info())

    async def answer(n_queries: int, k: int, compute: Callable[[], Response]) -> Response:
        # A small search costs less than the hop to a worker thread and back (on the 2-core
        # benchmark machine the hop halved the throughput of single-user requests): it runs
        # inline. Anything bigger runs in the threadpool, off the event loop.
        scan = n_queries * recommender.n_items * recommender.item_emb.shape[1]
        if scan <= INLINE_SCAN and n_queries * k <= INLINE_RESULTS:
            return compute()
        return await run_in_threadpool(compute)

    # Answers are Responses: FastAPI does not validate them against the (schema-only) models.
    @app.post(
        "/v1/recommend",
        response_model=RecommendResponse,
        responses=ok_answers({"results": [{"user_id": "u1", "items": ITEMS_EXAMPLE}]}),
        description=(
            "Top-k items for each user, best first (score descending, then the lower item "
            f"index). At most {MAX_IDS} user ids and {MAX_RESULTS} results (user ids x k) a "
            "request; for more, split the ids, or write a file with `cranerec recommend`."
        ),
    )
    async def recommend(body: RecommendRequest) -> Response:
        _check_results(len(body.user_ids), body.k, "user_ids")

        def compute() -> Response:
            results = recommender.recommend(
                body.user_ids, k=body.k, exclude_seen=body.exclude_seen, items=body.items,
                user_items=body.user_items, cold_slots=body.cold_slots,
                cold_min_z=body.cold_min_z,
            )  # fmt: skip
            return _answer(results, "user_id")

        return await answer(len(body.user_ids), body.k, compute)

    @app.post(
        "/v1/similar-items",
        response_model=SimilarItemsResponse,
        responses=ok_answers({"results": [{"item_id": "i1", "items": ITEMS_EXAMPLE}]}),
        description=(
            "The k items nearest each item by cosine similarity of the model's item vectors, "
            f"the item itself left out. At most {MAX_IDS} item ids and {MAX_RESULTS} results."
        ),
    )
    async def similar_items(body: SimilarItemsRequest) -> Response:
        _check_results(len(body.item_ids), body.k, "item_ids")

        def compute() -> Response:
            results = recommender.similar_items(body.item_ids, k=body.k)
            return _answer(results, "item_id")

        return await answer(len(body.item_ids), body.k, compute)

    @app.post(
        "/v1/recommend-for-items",
        response_model=RecommendForItemsResponse,
        responses=ok_answers({"results": [{"items": ITEMS_EXAMPLE}]}),
        description=(
            "Top-k items for a new user who holds the given items, without retraining (the "
            "user's vector is the model's rule over those items' vectors, by default their "
            f"mean). At most {MAX_ITEM_LIST} item ids."
        ),
    )
    async def recommend_for_items(body: RecommendForItemsRequest) -> Response:
        def compute() -> Response:
            result = recommender.recommend_for_items(
                body.item_ids, k=body.k, exclude_seen=body.exclude_seen,
                cold_slots=body.cold_slots, cold_min_z=body.cold_min_z,
            )  # fmt: skip
            return _answer([result], None)

        # the new user's vector (a mean over up to MAX_ITEM_LIST items) counts as a query
        return await answer(1 + len(body.item_ids) // 100, body.k, compute)


def _add_items(app: FastAPI, recommender: Recommender, allow_new_items: bool) -> None:
    """``POST /v1/items``: cold-start items (403 on a read-only service)."""

    @app.post(
        "/v1/items",
        status_code=201,
        response_model=AddItemsResponse,
        responses={
            201: {"content": {"application/json": {"example": {
                "added": 2, "n_items": 6712, "n_cold_start_items": 2}}}},
            400: {"model": ErrorResponse, "description": "Features the run cannot take (a "
                  "missing or unknown modality, a wrong width, a value beyond float32, "
                  "duplicate ids), a model without a content path (bpr, lightgcn, pop), or a "
                  "service that cannot add items: detail says which."},
            403: {"model": ErrorResponse, "description": "A read-only service."},
            409: {"model": ExistingIdsError, "description": "Ids already served (trained or "
                  f"added before), all listed; or the service holds {MAX_COLD_ITEMS} cold-start "
                  "items already.",
                  "content": {"application/json": {"example": example_of(ExistingIdsError)}}},
            413: ERROR_ANSWERS[413],
            422: ERROR_ANSWERS[422],
        },
        description=(
            "Add cold-start items from their features, recommendable (and similar-items) at "
            "once, counted by /v1/info; existing scores do not change. The model places each "
            "new item by its content path (crane, freedom, vbpr, ...; models without one answer "
            f"400). At most {MAX_NEW_ITEMS} items and {MAX_BODY_BYTES} bytes a request; added "
            "items live in memory until the service restarts (`cranerec serve --new-items DIR` "
            "adds a folder at start). Queries are answered while the vectors are computed."
        ),
    )  # fmt: skip
    async def add_items(body: AddItemsRequest) -> JSONResponse:
        if not allow_new_items:
            return JSONResponse(
                status_code=403, content={"detail": "this service is read-only: no new items"}
            )
        held = recommender.n_items - recommender.n_trained_items
        if held + len(body.item_ids) > MAX_COLD_ITEMS:
            return JSONResponse(
                status_code=409,
                content={
                    "detail": f"the service holds {held} cold-start items and adds at most "
                    f"{MAX_COLD_ITEMS} over HTTP: restart it with the items in --new-items DIR",
                    "existing_ids": [],
                },
            )

        def compute() -> JSONResponse:
            try:
                recommender.add_items(body.features, body.item_ids)
            except RequestError:
                raise
            except ServeError as e:  # the run lacks model.pt or its training data
                log.error("POST /v1/items: %s", e)
                raise RequestError(
                    "this service cannot add items: the model's weights or training data are "
                    "not available to it (the server log says which)"
                ) from None
            info = recommender.info()
            return JSONResponse(
                status_code=201,
                content={"added": len(body.item_ids), "n_items": info["n_items"],
                         "n_cold_start_items": info["n_cold_start_items"]},
            )  # fmt: skip

        # Never inline: the model's content path can take a while (kNN over the trained items)
        return await run_in_threadpool(compute)
