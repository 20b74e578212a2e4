"""The HTTP service's request and answer models (pydantic), its limits, and the answers the
OpenAPI schema documents for each endpoint.

Limits (``MAX_*``, documented in the schema and ``docs/serving.md``): a request over the ids,
``k``, modalities or feature widths the request models allow is 422; over ``MAX_RESULTS`` or
``MAX_BODY_BYTES``, 413, and over ``MAX_COLD_ITEMS``, 409 (both checked in ``app``). Requests
are typed strictly (``extra="forbid"``, ``strict=True``); the answer models describe the
answers in the schema only (``app`` writes them as plain JSON).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from cranerec.serve.cold_start import DEFAULT_COLD_MIN_Z

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


def example_of(model: type[BaseModel]) -> Any:
    """The first example of a model's ``examples`` (``_examples``)."""
    return model.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]


ITEMS_EXAMPLE = [{"item_id": "i7", "score": 3.1416}, {"item_id": "i2", "score": 2.718}]
#: The answers every POST endpoint documents besides its 200.
ERROR_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "A request the loaded run cannot answer as "
          "asked (e.g. exclude_seen on a service without seen items): detail says what to send."},
    404: {"model": UnknownIdsError, "description": "Ids the run does not know; all of them "
          "are listed.",
          "content": {"application/json": {"example": example_of(UnknownIdsError)}}},
    413: {"model": ErrorResponse, "description": f"Over {MAX_RESULTS} results (ids x k) or "
          f"{MAX_BODY_BYTES} bytes of body: lower k or split the ids across requests."},
    422: {"model": ValidationErrorResponse, "description": "Malformed JSON, a wrong type, a "
          "value out of range or an unknown field.",
          "content": {"application/json": {"example": example_of(ValidationErrorResponse)}}},
}  # fmt: skip


def ok_answers(example: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """A POST endpoint's documented answers: its 200 with ``example``, and ``ERROR_ANSWERS``."""
    return {200: {"content": {"application/json": {"example": example}}}, **ERROR_ANSWERS}
