"""`gemner serve`: the pipeline behind an HTTP API (FastAPI) and a web page, with requests from
concurrent callers batched together. Needs the `serve` extra (`pip install 'gemner[serve]'`)."""

from .limits import TOKEN_ENV, ServeSettings

__all__ = ["TOKEN_ENV", "ServeSettings", "create_app", "serve"]


def __getattr__(name: str):  # FastAPI and uvicorn are imported only when the service is used
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(name)
