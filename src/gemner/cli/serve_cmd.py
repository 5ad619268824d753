"""`gemner serve`: the pipeline behind an HTTP API and a web page (needs the `serve` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..pipeline.preset_names import PRESET_LIST
from ..serve.limits import ServeSettings
from .app import TrustRemoteCodeOpt, app
from .console import err as console
from .errors import friendly_errors
from .options import ThreadsOpt

DEFAULT = ServeSettings()  # the defaults live there, once


@app.command("serve")
@friendly_errors
def serve(
    config: Annotated[str, typer.Option(
        "--config", "-c",
        help=f"Pipeline preset ({PRESET_LIST}), YAML file, or folder with gemner.yaml.")
    ] = "lite",
    host: Annotated[str, typer.Option(help="Address to bind; this machine only unless told otherwise.")
                    ] = DEFAULT.host,
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = DEFAULT.port,
    workers: Annotated[int, typer.Option(
        min=1, help="Processes, each with its own copy of the models.")] = DEFAULT.workers,
    max_batch: Annotated[int, typer.Option(
        min=1, help="Posts per pipeline batch (1: one post at a time).")] = DEFAULT.max_batch,
    batch_window_ms: Annotated[float, typer.Option(
        min=0, help="How long the free pipeline waits for callers it expects back (kept-alive connections it "
                    "answered) to share a batch; a caller on its own never waits.")] = DEFAULT.batch_window_ms,
    max_queue: Annotated[int, typer.Option(min=1, help="Posts waiting at most; beyond it: 429.")
                         ] = DEFAULT.max_queue,
    timeout: Annotated[float, typer.Option(min=0.001, help="Seconds per request; beyond it: 504.")
                       ] = DEFAULT.timeout_s,
    threads: ThreadsOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
) -> None:
    """Serve the pipeline: POST /v1/entities, /v1/entities:batch, GET /healthz, /readyz, /v1/config,
    API docs at /docs and a web page at /. A bearer token is required when GEMNER_SERVE_TOKEN is set."""
    try:
        from ..serve.server import serve as run_server
    except ImportError as err:
        console.print(f"[bold red]error:[/] gemner serve needs the serve extra: pip install 'gemner[serve]' ({err})",
                      highlight=False)
        raise typer.Exit(2) from None
    settings = ServeSettings.from_environment(host=host, port=port, workers=workers, max_batch=max_batch,
                                              batch_window_ms=batch_window_ms, max_queue=max_queue,
                                              timeout_s=timeout, threads=threads)
    if not settings.is_local and settings.token is None:
        console.print(f"[yellow]warning:[/] serving on {host} without a token: anyone who can reach it may use it "
                      "(set GEMNER_SERVE_TOKEN)", highlight=False)
    console.print(f"serving {config} on http://{host}:{port}/ (API docs at /docs)", highlight=False)
    run_server(config, settings, trust_remote_code=trust_remote_code)
