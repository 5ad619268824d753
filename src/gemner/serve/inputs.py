"""The request bodies `gemner serve` accepts, checked once at the boundary: JSON (`text`, base64 `image`)
or multipart (`text` field, `image` file). A problem is an `ApiError` with the status to answer."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request

from ..data.images import ImageError, ImageTooLargeError, load_image_bytes
from .limits import ServeSettings


class ApiError(Exception):
    """An answer other than 200, with a message safe to show the caller."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 detail: list[dict] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.detail = detail


class PostIn(BaseModel):
    """One post: its raw text and, optionally, its image as base64 (a `data:` URL works too)."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, max_length=200, description="Echoed back as the record's `id`.")
    text: str = Field(description="The post's raw text, tokenised like the benchmark tweets.")
    image: str | None = Field(None, description="The image file, base64-encoded.")
    heatmaps: bool = Field(False, description="Also return each grounded entity's traced heat map (PNG).")


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    posts: list[PostIn]


@dataclass
class Submission:
    """One checked post of a request."""

    id: str | None
    text: str
    image: bytes | None = None
    image_name: str | None = None
    heatmaps: bool = False


def _problems(err: ValidationError) -> list[dict]:
    """Pydantic's errors without the offending input (it may be megabytes of base64)."""
    return [{"loc": list(e["loc"]), "msg": e["msg"]} for e in err.errors(include_url=False, include_input=False)]


def _base64_image(value: str, settings: ServeSettings) -> bytes:
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    if len(value) > (settings.max_image_bytes + 2) // 3 * 4 + 4:
        raise ApiError(413, f"the image is over the limit of {settings.max_image_bytes:,} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "`image` is not valid base64") from None


async def check_submission(submission: Submission, settings: ServeSettings) -> Submission:
    """Text length and image limits; the image is decoded once here (through `gemner.data.images`) so that
    a broken or oversized one is refused before it takes a place in the queue."""
    if len(submission.text) > settings.max_text_chars:
        raise ApiError(422, f"`text` has {len(submission.text):,} characters, over the limit of "
                            f"{settings.max_text_chars:,}")
    if not submission.text.strip():
        raise ApiError(422, "`text` is empty")
    if submission.image is not None:
        try:
            await run_in_threadpool(load_image_bytes, submission.image, name=submission.image_name or "upload",
                                    limit_bytes=settings.max_image_bytes, limit_pixels=settings.max_image_pixels)
        except ImageTooLargeError as err:
            raise ApiError(413, str(err)) from None
        except ImageError as err:
            raise ApiError(422, str(err)) from None
    return submission


def _from_model(post: PostIn, settings: ServeSettings) -> Submission:
    image = _base64_image(post.image, settings) if post.image is not None else None
    return Submission(post.id, post.text, image, "upload" if image is not None else None, post.heatmaps)


async def _json(request: Request):
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(422, f"the body is not valid JSON ({err})") from None


async def _multipart(request: Request, settings: ServeSettings) -> Submission:
    async with request.form(max_files=1, max_fields=8) as form:
        text = form.get("text")
        if not isinstance(text, str):
            raise ApiError(422, "the form needs a `text` field")
        upload = form.get("image")
        image, name = None, None
        if isinstance(upload, UploadFile):
            image = await upload.read(settings.max_image_bytes + 1)
            name = upload.filename or "upload"
            if not image:
                image, name = None, None  # a form sent with no file chosen
        post_id = form.get("id")
        return Submission(post_id if isinstance(post_id, str) and post_id else None, text, image, name,
                          form.get("heatmaps") in ("1", "true", "on"))


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_one(request: Request, settings: ServeSettings) -> Submission:
    """The post of a `POST /v1/entities` request (JSON or multipart), checked."""
    kind = _content_type(request)
    if kind == "multipart/form-data":
        submission = await _multipart(request, settings)
    elif kind in ("application/json", ""):
        try:
            submission = _from_model(PostIn.model_validate(await _json(request)), settings)
        except ValidationError as err:
            raise ApiError(422, "invalid request", detail=_problems(err)) from None
    else:
        raise ApiError(415, f"send application/json or multipart/form-data, not {kind}")
    return await check_submission(submission, settings)


async def read_batch(request: Request, settings: ServeSettings) -> list[Submission]:
    """The posts of a `POST /v1/entities:batch` request (JSON `{"posts": [...]}`), checked."""
    if _content_type(request) not in ("application/json", ""):
        raise ApiError(415, "send application/json")
    try:
        batch = BatchIn.model_validate(await _json(request))
    except ValidationError as err:
        raise ApiError(422, "invalid request", detail=_problems(err)) from None
    if not batch.posts:
        raise ApiError(422, "`posts` is empty")
    if len(batch.posts) > settings.max_batch_posts:
        raise ApiError(413, f"{len(batch.posts)} posts, over the limit of {settings.max_batch_posts} per request")
    checked = []
    for index, post in enumerate(batch.posts):
        try:
            checked.append(await check_submission(_from_model(post, settings), settings))
        except ApiError as err:
            raise ApiError(err.status, f"posts[{index}]: {err.message}") from None
    return checked
