"""The FastAPI application of `gemner serve`: routes, bearer token, error answers, and the web page.

Every error answer is `{"error": message, "request_id": id}` (plus `detail` for a malformed body); a
failure inside the server answers 500 with the request id only, and its traceback goes to the log.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from ..pipeline.config import PipelineConfig
from .guard import Guard, request_id
from .inputs import ApiError, PostIn, read_batch, read_one
from .limits import ServeSettings
from .service import Pipeline, Service, build_gem

log = logging.getLogger("gemner.serve")
STATIC = Path(__file__).parent / "static"
PAGE_POLICY = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'"
RECORD_EXAMPLE = {"id": "post", "tokens": ["Obama", "visits", "Paris"], "image": None, "entities": [
    {"start": 0, "end": 1, "text": "Obama", "type": "politician", "coarse": "person", "box": None,
     "box_status": "not_computed", "scores": {"entropy": 0.12}}],
    "stages": {"knowledge": "off", "recognizer": "on", "rerank": "on", "ground": "unavailable: ..."}}
BATCH_SCHEMA = {"type": "object", "required": ["posts"], "additionalProperties": False,
                "properties": {"posts": {"type": "array", "items": PostIn.model_json_schema()}}}


def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None,
           detail: list[dict] | None = None) -> JSONResponse:
    rid = request_id(request.scope)
    body: dict[str, Any] = {"error": message, "request_id": rid}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers={**(headers or {}), "X-Request-ID": rid})


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        if err.status >= 500 and err.status != 503:  # 503: still loading, nothing to investigate
            log.warning("request %s: %s %s", request_id(request.scope), err.status, err.message)
        return _error(request, err.status, err.message, err.headers, err.detail)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return _error(request, err.status_code, str(err.detail), dict(err.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in err.errors()]
        return _error(request, 422, "invalid request", detail=detail)

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception) -> JSONResponse:
        log.error("request %s failed", request_id(request.scope), exc_info=err)
        return _error(request, 500, "internal error; the server log has the details under this request id")


def _bearer(settings: ServeSettings) -> Callable[[Request], Awaitable[None]]:
    # async, though it awaits nothing: FastAPI runs a plain `def` dependency in its thread pool, a thread
    # hop per request that also competes with the pipeline's thread for the GIL
    async def check(request: Request) -> None:
        if settings.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), settings.token.encode()):
            raise ApiError(401, "a bearer token is required (Authorization: Bearer ...)",
                           headers={"WWW-Authenticate": "Bearer"})
    return check


def _body_doc(schema: dict, multipart: bool) -> dict:
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if multipart:
        content["multipart/form-data"] = {"schema": {"type": "object", "required": ["text"], "properties": {
            "text": {"type": "string"}, "image": {"type": "string", "format": "binary"}, "id": {"type": "string"},
            "heatmaps": {"type": "boolean"}}}}
    return {"requestBody": {"required": True, "content": content}}


def _record_doc(example: Any) -> dict:
    return {200: {"description": "The records `gemner predict` writes", "content": {
        "application/json": {"example": example}}}}


def create_app(config: PipelineConfig, settings: ServeSettings,
               build: Callable[[PipelineConfig], Pipeline] | None = None) -> FastAPI:
    """The service for one pipeline configuration. `build` makes the pipeline from it (default
    `GEM(config)`); it runs in the background after start-up, and `/readyz` answers 200 once it is done."""
    service = Service(config, settings, build or build_gem)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="gemner", summary="Fine-grained multimodal named entities, typed and grounded in the image",
                  lifespan=lifespan)
    app.state.service = service
    app.add_middleware(Guard, max_body_bytes=settings.max_body_bytes)
    _handlers(app)
    token = [Depends(_bearer(settings))]

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, str]:
        """The process is up (the models may still be loading)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"], responses={503: {"description": "Loading, or failed to load"}})
    async def readyz(request: Request):
        """The models are loaded and a post has gone through them."""
        if service.ready:
            return {"status": "ready"}
        if service.load_error:
            return _error(request, 503, f"the pipeline failed to load: {service.load_error}")
        return _error(request, 503, "the models are loading", {"Retry-After": "5"})

    @app.get("/v1/config", tags=["entities"], dependencies=token)
    async def describe() -> dict[str, Any]:
        """The preset, its models, which stages run, the limits, and the batches served so far."""
        return service.describe()

    @app.post("/v1/entities", tags=["entities"], dependencies=token, responses=_record_doc(RECORD_EXAMPLE),
              openapi_extra=_body_doc(PostIn.model_json_schema(), multipart=True))
    async def entities(request: Request) -> JSONResponse:
        """One post (JSON with base64 `image`, or multipart with an `image` file) -> its record: the
        entities with their type, coarse type, scores and box, and each stage's state."""
        submission = await read_one(request, settings)
        # records are plain JSON already: JSONResponse skips FastAPI's per-field encoder
        return JSONResponse((await service.predict([submission], request_id(request.scope), request))[0])

    @app.post("/v1/entities:batch", tags=["entities"], dependencies=token,
              responses=_record_doc({"results": [RECORD_EXAMPLE]}),
              openapi_extra=_body_doc(BATCH_SCHEMA, multipart=False))
    async def entities_batch(request: Request) -> JSONResponse:
        """Several posts `{"posts": [...]}` -> `{"results": [...]}`, one record per post, in order."""
        submissions = await read_batch(request, settings)
        return JSONResponse({"results": await service.predict(submissions, request_id(request.scope), request)})

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
