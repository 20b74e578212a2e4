"""The HTTP service: ``create_app(recommender)`` builds a FastAPI app around a loaded
``Recommender`` (no globals; ``cranerec serve RUN_DIR`` runs it with uvicorn).

Endpoints (raw ids travel as strings; every list answer has the same shape):

    GET  /health                  {"status": "ok"}
    GET  /v1/info                 model, dataset, counts, versions
    POST /v1/recommend            {"user_ids": ["u1", ...], "k": 20, "exclude_seen": true,
                                   "items": null | ["i1", ...]}
                               -> {"results": [{"user_id": "u1",
                                                "items": [{"item_id": "i9", "score": 1.23}, ...]}]}
    POST /v1/similar-items        {"item_ids": ["i1", ...], "k": 20}
                               -> {"results": [{"item_id": "i1", "items": [...]}]}
    POST /v1/recommend-for-items  {"item_ids": ["i1", ...], "k": 20, "exclude_seen": true}
                               -> {"results": [{"items": [...]}]}   (one new user)

Validation: fields are typed strictly (ids are strings, ``k`` an integer in 1..1000, at most
1000 ids a request, ids of 1..256 characters, no unknown fields): anything else is 422, as is
malformed JSON (``{"detail": [{"type", "loc", "msg"}, ...]}``; the input is not echoed). Unknown ids are 404 with ``{"detail": ..., "unknown_ids": [...]}``. No request
reads a file: the recommender is loaded before the app is built. The OpenAPI schema is served
at ``/openapi.json`` (interactive docs at ``/docs``).

Handlers are ``async`` and compute inline: a request is a fast faiss search (bounded by the
limits above), so running it on the event loop avoids a thread hop per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

import cranerec
from cranerec.serve.recommender import RankedItems, Recommender, ServeError, UnknownIdError

MAX_K = 1000
MAX_IDS = 1000
MAX_ID_LENGTH = 256


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
K = Annotated[int, Field(ge=1, le=MAX_K)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RecommendRequest(_Request):
    user_ids: IdList
    k: K = 20
    exclude_seen: bool = True
    items: IdList | None = None  # restrict the candidates to these item ids


class SimilarItemsRequest(_Request):
    item_ids: IdList
    k: K = 20


class RecommendForItemsRequest(_Request):
    item_ids: IdList  # the new user's items
    k: K = 20
    exclude_seen: bool = True


class ScoredItem(BaseModel):
    item_id: str
    score: float


class UserResult(BaseModel):
    user_id: str
    items: list[ScoredItem]


class ItemResult(BaseModel):
    item_id: str
    items: list[ScoredItem]


class NewUserResult(BaseModel):
    items: list[ScoredItem]


class RecommendResponse(BaseModel):
    results: list[UserResult]


class SimilarItemsResponse(BaseModel):
    results: list[ItemResult]


class RecommendForItemsResponse(BaseModel):
    results: list[NewUserResult]


class InfoResponse(BaseModel):
    model: str
    dataset: str
    synthetic_data: bool
    data_fingerprint: str | None
    n_users: int
    n_items: int
    n_cold_start_items: int
    dim: int
    index: str
    cold_start: bool
    version: str
    trained_with_version: str | None


class HealthResponse(BaseModel):
    status: str


def _items(ranked: RankedItems) -> list[dict]:
    return ranked.items()


def create_app(recommender: Recommender) -> FastAPI:
    """A FastAPI app answering from ``recommender`` (see the module docstring)."""
    app = FastAPI(
        title="cranerec",
        version=cranerec.__version__,
        description=f"Recommendations from a trained {recommender.config.model_name} run.",
    )

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

    @app.exception_handler(UnknownIdError)
    async def _unknown(request: Request, exc: UnknownIdError) -> JSONResponse:
        return JSONResponse(
            status_code=404,
            content={"detail": str(exc), "kind": exc.kind, "unknown_ids": exc.ids[:MAX_IDS]},
        )

    @app.exception_handler(ServeError)
    async def _bad_request(request: Request, exc: ServeError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.get("/health", response_model=HealthResponse)
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/info", response_model=InfoResponse)
    async def info() -> dict:
        return recommender.info()

    @app.post("/v1/recommend", response_model=RecommendResponse)
    async def recommend(body: RecommendRequest) -> dict:
        results = recommender.recommend(
            body.user_ids, k=body.k, exclude_seen=body.exclude_seen, items=body.items
        )
        return {"results": [{"user_id": r.query, "items": _items(r)} for r in results]}

    @app.post("/v1/similar-items", response_model=SimilarItemsResponse)
    async def similar_items(body: SimilarItemsRequest) -> dict:
        results = recommender.similar_items(body.item_ids, k=body.k)
        return {"results": [{"item_id": r.query, "items": _items(r)} for r in results]}

    @app.post("/v1/recommend-for-items", response_model=RecommendForItemsResponse)
    async def recommend_for_items(body: RecommendForItemsRequest) -> dict:
        result = recommender.recommend_for_items(
            body.item_ids, k=body.k, exclude_seen=body.exclude_seen
        )
        return {"results": [{"items": _items(result)}]}

    return app
