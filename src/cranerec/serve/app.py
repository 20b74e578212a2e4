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
places for cold-start items in a ranking (``ColdOptions`` in ``recommender.py``).

Limits (module constants, documented in the OpenAPI schema and ``docs/serving.md``): at most
``MAX_IDS`` (256) query ids (``user_ids``, or ``item_ids`` of similar-items), ``MAX_ITEM_LIST``
(1000) ids in an item list (``items``, ``item_ids`` of recommend-for-items), ``k`` in
1..``MAX_K`` (1000): beyond these, 422. At most ``MAX_RESULTS`` (10,000) results a request
(query ids x k) and ``MAX_BODY_BYTES`` (2 MiB) of request body: beyond these, 413 with a
one-line ``detail`` saying what to change. A bigger job is ``cranerec recommend`` (a file).

Validation: fields are typed strictly (ids are strings of 1..256 characters, no unknown
fields): anything else is 422, as is malformed JSON (``{"detail": [{"type", "loc", "msg"},
...]}``; the input is not echoed). Unknown ids are 404 with ``{"detail": ..., "kind": ...,
"unknown_ids": [...]}``. A request the loaded run cannot answer as asked (``exclude_seen`` on a
service loaded without seen items) is 400 with a one-line ``detail``. No request reads a file:
the recommender is loaded (and its files checked) before the app is built, and no answer names
a server path (any other ``ServeError`` is logged and answered 500 without its message). The
OpenAPI schema is served at ``/openapi.json``, documented at ``/docs`` without the network
(see ``_add_docs``).

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

import html
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import cranerec
from cranerec.serve.recommender import (
    DEFAULT_COLD_MIN_Z,
    ItemExistsError,
    RankedItems,
    Recommender,
    RequestError,
    ServeError,
    UnknownIdError,
)

log = logging.getLogger(__name__)

#: ``k`` of any request (422 beyond).
MAX_K = 1000
#: Query ids a request: ``user_ids`` (recommend), ``item_ids`` (similar-items) (422 beyond).
MAX_IDS = 256
#: Ids of an item list: ``items``, ``item_ids`` of recommend-for-items (422 beyond).
MAX_ITEM_LIST = 1000
#: Results a request: query ids x ``k`` (413 beyond).
MAX_RESULTS = 10_000
#: Bytes of a request body (413 beyond).
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_ID_LENGTH = 256
#: New items a ``POST /v1/items`` request (422 beyond); the body limit usually binds first.
MAX_NEW_ITEMS = 1000
#: Modalities and numbers per feature row of a ``POST /v1/items`` request (422 beyond).
MAX_MODALITIES = 16
MAX_FEATURE_WIDTH = 16_384
#: Cold-start items the service holds at most when adding over HTTP (409 beyond): every
#: query searches them exactly, and each costs memory until the service restarts.
MAX_COLD_ITEMS = 100_000
#: A search runs on the event loop when it scans at most this many vector entries (queries x
#: items x width, ~1 ms) and returns at most INLINE_RESULTS results; otherwise in the threadpool.
INLINE_SCAN = 2_000_000
INLINE_RESULTS = 100


def _encodable(value: str) -> str:
    # JSON escapes can carry lone surrogates ("\ud800"), which no answer could echo as UTF-8.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("ids must be valid Unicode text") from None
    return value


RawId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH), AfterValidator(_encodable)
]
IdList = Annotated[list[RawId], Field(min_length=1, max_length=MAX_IDS)]
ItemList = Annotated[list[RawId], Field(min_length=1, max_length=MAX_ITEM_LIST)]
K = Annotated[int, Field(ge=1, le=MAX_K)]
ColdSlots = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_K,
        description="Up to this many of the k places go to the best-scoring cold-start items "
        "(added with POST /v1/items) that did not make the list on their score, when they "
        "clear the bar cold_min_z; the lowest other items give way, and the list stays ordered "
        "by score (reserved items last). 0 (default): every item competes on the model's raw "
        "score, with which graph models rarely rank a new item in a top-20.",
    ),
]
ColdMinZ = Annotated[
    float | None,
    Field(
        ge=-10,
        le=10,
        allow_inf_nan=False,
        description="The bar for a reserved slot: the cold item's score must be at least the "
        "user's mean score over the trained items plus this many standard deviations; null: "
        f"no bar. Default {DEFAULT_COLD_MIN_Z}.",
    ),
]
ModalityName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
FeatureValue = Annotated[float, Field(allow_inf_nan=False)]


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RecommendRequest(_Request):
    model_config = _examples(
        {"user_ids": ["u1", "u2"], "k": 10},
        {"user_ids": ["u1"], "k": 5, "items": ["i3", "i7", "i9"]},
        {"user_ids": ["u1"], "k": 20, "user_items": [["i4", "i8"]]},
    )
    user_ids: IdList = Field(
        description=f"Raw user ids of the run (strings), 1..{MAX_IDS}; one result each, in order."
    )
    k: K = Field(20, description=f"Items per user, 1..{MAX_K}; user_ids x k <= {MAX_RESULTS}.")
    exclude_seen: bool = Field(
        True,
        description="Leave out the items the run saw for each user (the splits /v1/info's "
        "seen_splits names).",
    )
    items: ItemList | None = Field(
        None, description=f"Restrict the candidates to these item ids (1..{MAX_ITEM_LIST})."
    )
    user_items: list[Annotated[list[RawId], Field(max_length=MAX_ITEM_LIST)]] | None = Field(
        None,
        description="Per user id (one list each, in order), item ids to leave out as well: a "
        f"history the run does not have (up to {MAX_ITEM_LIST} a user). Left out whatever "
        "exclude_seen says.",
    )

    cold_slots: ColdSlots = 0
    cold_min_z: ColdMinZ = DEFAULT_COLD_MIN_Z

    @model_validator(mode="after")
    def _one_history_per_user(self) -> RecommendRequest:
        if self.user_items is not None and len(self.user_items) != len(self.user_ids):
            raise ValueError(
                f"user_items must hold one list per user id ({len(self.user_ids)} user ids, "
                f"{len(self.user_items)} lists)"
            )
        _check_cold_slots(self.cold_slots, self.k)
        return self


def _check_cold_slots(cold_slots: int, k: int) -> None:
    if cold_slots > k:
        raise ValueError(f"cold_slots ({cold_slots}) must be at most k ({k})")


class SimilarItemsRequest(_Request):
    model_config = _examples({"item_ids": ["i1", "i2"], "k": 10})
    item_ids: IdList = Field(
        description=f"Raw item ids, 1..{MAX_IDS}; one result each (the item itself left out)."
    )
    k: K = Field(20, description=f"Neighbours per item, 1..{MAX_K}; item_ids x k <= {MAX_RESULTS}.")


class RecommendForItemsRequest(_Request):
    model_config = _examples({"item_ids": ["i1", "i5", "i9"], "k": 10})
    item_ids: ItemList = Field(
        description=f"The new user's items (raw item ids, 1..{MAX_ITEM_LIST})."
    )
    k: K = Field(20, description=f"Items to recommend, 1..{MAX_K}.")
    exclude_seen: bool = Field(True, description="Leave the given items out of the answer.")
    cold_slots: ColdSlots = 0
    cold_min_z: ColdMinZ = DEFAULT_COLD_MIN_Z

    @model_validator(mode="after")
    def _slots_within_k(self) -> RecommendForItemsRequest:
        _check_cold_slots(self.cold_slots, self.k)
        return self


class AddItemsRequest(_Request):
    model_config = _examples(
        {"item_ids": ["new1", "new2"],
         "features": {"image": [[0.12, -0.5, 0.33], [0.0, 0.25, -0.1]],
                      "text": [[0.7, 0.1, -0.2, 0.05], [0.3, -0.4, 0.2, 0.1]]}},
    )  # fmt: skip
    item_ids: Annotated[list[RawId], Field(min_length=1, max_length=MAX_NEW_ITEMS)] = Field(
        description=f"Raw ids of the new items, 1..{MAX_NEW_ITEMS}, none already served."
    )
    features: Annotated[
        dict[
            ModalityName,
            list[Annotated[list[FeatureValue], Field(min_length=1, max_length=MAX_FEATURE_WIDTH)]],
        ],
        Field(min_length=1, max_length=MAX_MODALITIES),
    ] = Field(
        description="Per modality of the run (every one, no other: GET /v1/info's "
        "`modalities` gives their widths), one row of numbers per new item, in item_ids' order; "
        "encoded as the training features were (the same encoder, e.g. `cranerec features`)."
    )


class AddItemsResponse(BaseModel):
    added: int = Field(description="Items added.")
    n_items: int = Field(description="Items served now, cold-start items included.")
    n_cold_start_items: int = Field(description="Cold-start items served now.")


class ScoredItem(BaseModel):
    item_id: str = Field(description="Raw item id.")
    score: float = Field(description="The model's score (inner product of the vectors).")


class UserResult(BaseModel):
    user_id: str = Field(description="The user id asked for.")
    items: list[ScoredItem] = Field(description="Best first; shorter than k when fewer remain.")


class ItemResult(BaseModel):
    item_id: str = Field(description="The item id asked for.")
    items: list[ScoredItem] = Field(description="Most similar first (cosine of the vectors).")


class NewUserResult(BaseModel):
    items: list[ScoredItem] = Field(description="Best first.")


class RecommendResponse(BaseModel):
    results: list[UserResult] = Field(description="One per user id, in the request's order.")


class SimilarItemsResponse(BaseModel):
    results: list[ItemResult] = Field(description="One per item id, in the request's order.")


class RecommendForItemsResponse(BaseModel):
    results: list[NewUserResult] = Field(description="One result: the new user's.")


class InfoResponse(BaseModel):
    model: str = Field(description="Model name (registry key).")
    dataset: str = Field(description="Name of the training data.")
    synthetic_data: bool = Field(description="Trained on generated data (figures mean nothing).")
    data_fingerprint: str | None = Field(description="Fingerprint of the training data.")
    n_users: int
    n_items: int = Field(description="Items served, cold-start items included.")
    n_cold_start_items: int = Field(description="Items added from features (add_items).")
    dim: int = Field(description="Width of the vectors.")
    index: str = Field(description="Vector index: flat (exact), hnsw or ivf.")
    cold_start: bool = Field(description="Whether the model can add items from features.")
    modalities: dict[str, int] | None = Field(
        description="The width of each modality POST /v1/items needs (null: not known, as the "
        "training data is not loaded; every model with cold_start false needs none)."
    )
    version: str = Field(description="cranerec version serving.")
    trained_with_version: str | None = Field(description="cranerec version that trained the run.")
    seen_splits: list[str] = Field(
        description="The splits exclude_seen leaves out (train, valid, test); empty: none."
    )


class HealthResponse(BaseModel):
    status: str = Field(examples=["ok"])


class ErrorResponse(BaseModel):
    model_config = _examples({"detail": "a one-line message saying what to change"})
    detail: str


class ExistingIdsError(BaseModel):
    model_config = _examples(
        {"detail": "item id already in the catalogue: 'i7'", "existing_ids": ["i7"]}
    )
    detail: str = Field(description="The ids already served, named (at most 20).")
    existing_ids: list[str] = Field(description="Every id of the request already served.")


class UnknownIdsError(BaseModel):
    model_config = _examples(
        {"detail": "unknown user id: 'u404'", "kind": "user", "unknown_ids": ["u404"]}
    )
    detail: str = Field(description="The unknown ids, named (at most 20).")
    kind: str = Field(description="user or item.")
    unknown_ids: list[str] = Field(description="Every unknown id of the request.")


class FieldError(BaseModel):
    type: str = Field(description="Error type, e.g. missing, int_type, too_long.")
    loc: list[str] = Field(description='Where, e.g. ["body", "k"].')
    msg: str = Field(description="What is wrong (the input is not echoed).")


class ValidationErrorResponse(BaseModel):
    model_config = _examples(
        {
            "detail": [
                {
                    "type": "less_than_equal",
                    "loc": ["body", "k"],
                    "msg": f"Input should be less than or equal to {MAX_K}",
                }
            ]
        }
    )
    detail: list[FieldError]


def _example(model: type[BaseModel]) -> Any:
    return model.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]


_ITEMS_EXAMPLE = [{"item_id": "i7", "score": 3.1416}, {"item_id": "i2", "score": 2.718}]
#: The answers every POST endpoint documents besides its 200.
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "A request the loaded run cannot answer as "
          "asked (e.g. exclude_seen on a service without seen items): detail says what to send."},
    404: {"model": UnknownIdsError, "description": "Ids the run does not know; all of them "
          "are listed.", "content": {"application/json": {"example": _example(UnknownIdsError)}}},
    413: {"model": ErrorResponse, "description": f"Over {MAX_RESULTS} results (ids x k) or "
          f"{MAX_BODY_BYTES} bytes of body: lower k or split the ids across requests."},
    422: {"model": ValidationErrorResponse, "description": "Malformed JSON, a wrong type, a "
          "value out of range or an unknown field.",
          "content": {"application/json": {"example": _example(ValidationErrorResponse)}}},
}  # fmt: skip


def _ok(example: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"application/json": {"example": example}}}, **_ERRORS}


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


def _swagger_assets() -> Path | None:
    """The folder of Swagger UI's files from the ``swagger-ui-bundle`` package, if installed."""
    try:
        import swagger_ui_bundle  # type: ignore[import-not-found]
    except ImportError:
        return None
    folder = Path(getattr(swagger_ui_bundle, "swagger_ui_path", ""))
    needed = ("swagger-ui-bundle.js", "swagger-ui.css")
    return folder if all((folder / name).is_file() for name in needed) else None


def _add_docs(app: FastAPI) -> None:
    """``/docs`` without the network: Swagger UI from the ``swagger-ui-bundle`` package's files
    when it is installed, else a page rendered here from the schema (no script)."""
    assets = _swagger_assets()
    if assets is not None:
        app.mount("/docs/assets", StaticFiles(directory=assets), name="docs-assets")

        @app.get("/docs", include_in_schema=False)
        async def swagger(request: Request) -> HTMLResponse:
            root = request.scope.get("root_path", "")
            return get_swagger_ui_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - docs",
                swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
                swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
                swagger_favicon_url="data:,",
                swagger_ui_parameters={"validatorUrl": None},  # no badge from swagger.io
            )

        return

    @app.get("/docs", include_in_schema=False)
    async def schema_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return HTMLResponse(_schema_html(app.openapi(), f"{root}{app.openapi_url}"))


def _schema_html(schema: dict[str, Any], openapi_url: str) -> str:
    """The OpenAPI schema as one self-contained page: endpoints, fields, answers, examples."""
    esc = html.escape
    components = schema.get("components", {}).get("schemas", {})

    def ref(s: dict[str, Any]) -> dict[str, Any]:
        return components.get(s["$ref"].rsplit("/", 1)[1], {}) if "$ref" in s else s

    def pre(value: Any) -> str:
        return f"<pre>{esc(json.dumps(value, indent=2))}</pre>"

    info = schema["info"]
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(info['title'])} - docs"
        "</title><style>body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}"
        "pre{background:#f4f4f4;padding:.5em;overflow:auto}td,th{text-align:left;"
        "padding:.2em .6em;vertical-align:top}h2{border-top:1px solid #ccc;padding-top:.6em}"
        "</style></head><body>",
        f"<h1>{esc(info['title'])} {esc(info['version'])}</h1><p>{esc(info['description'])}</p>",
        f"<p>The schema: <a href='{esc(openapi_url)}'>{esc(openapi_url)}</a>. This page is "
        "rendered from it on the server, with nothing to fetch; for the interactive Swagger UI "
        "served from local files, install the <code>swagger-ui-bundle</code> package.</p>",
    ]
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            out.append(f"<h2>{esc(method.upper())} {esc(path)}</h2>")
            out.append(f"<p>{esc(op.get('description') or op.get('summary', ''))}</p>")
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                model = ref(body["schema"])
                rows = "".join(
                    f"<tr><td><code>{esc(name)}</code></td><td>{esc(p.get('description', ''))}"
                    "</td></tr>"
                    for name, p in model.get("properties", {}).items()
                )
                required = ", ".join(model.get("required", [])) or "none"
                out.append(
                    f"<h3>Request body</h3><p>Required: {esc(required)}.</p><table>{rows}</table>"
                )
                for example in model.get("examples", []):
                    out.append(pre(example))
            out.append("<h3>Answers</h3><table>")
            for code, response in op.get("responses", {}).items():
                content = response.get("content", {}).get("application/json", {})
                example = pre(content["example"]) if "example" in content else ""
                out.append(
                    f"<tr><th>{esc(code)}</th><td>{esc(response.get('description', ''))}"
                    f"{example}</td></tr>"
                )
            out.append("</table>")
    out.append("</body></html>")
    return "".join(out)


def create_app(recommender: Recommender, *, allow_new_items: bool = True) -> FastAPI:
    """A FastAPI app answering from ``recommender`` (see the module docstring).
    ``allow_new_items=False``: ``POST /v1/items`` answers 403 (a read-only service)."""
    app = FastAPI(
        title="cranerec",
        version=cranerec.__version__,
        description=(
            f"Recommendations from a trained {recommender.config.model_name} run. Raw ids "
            f"travel as strings. Limits: {MAX_IDS} query ids and {MAX_ITEM_LIST} ids in an "
            f"item list (422 beyond), k <= {MAX_K} (422), {MAX_RESULTS} results (ids x k) and "
            f"{MAX_BODY_BYTES} bytes of body a request (413)."
        ),
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: see _add_docs
        redoc_url=None,
    )
    app.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES)
    _add_docs(app)

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
        responses=_ok({"results": [{"user_id": "u1", "items": _ITEMS_EXAMPLE}]}),
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
        responses=_ok({"results": [{"item_id": "i1", "items": _ITEMS_EXAMPLE}]}),
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
        responses=_ok({"results": [{"items": _ITEMS_EXAMPLE}]}),
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
                  "content": {"application/json": {"example": _example(ExistingIdsError)}}},
            413: _ERRORS[413],
            422: _ERRORS[422],
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

    return app
