"""The web app: the page, ``POST /api/classify``, ``GET /api/model`` and ``GET /api/live``.

``create_app(service, live)`` builds a FastAPI app around a loaded ``GenreService`` (the upload
classifiers) and a ``LiveHub`` (the server's microphone). Every error a client can cause is a 4xx
with a JSON body ``{"error": "..."}`` that the page shows as it is; the server keeps serving.
Inference runs in Starlette's thread pool, so the event loop stays free for other requests.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge_genre import __version__
from edge_genre.serve.live import LiveHub, LiveSettings
from edge_genre.serve.service import ClassifyError, GenreService
from edge_genre.serve.upload import UploadError, read_upload

log = logging.getLogger("edge_genre.serve")

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The multipart form field that carries the audio file.
UPLOAD_FIELD = "file"


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(service: GenreService, live: LiveHub | None = None) -> FastAPI:
    """The edge-genre web app around a loaded service (and a live hub; None: live mode off)."""
    live = live or LiveHub(service.model_path, settings=LiveSettings(enabled=False))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        live.close()

    app = FastAPI(title="edge-genre", version=__version__, lifespan=lifespan,
                  docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json")
    app.state.service, app.state.live = service, live

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return error(400, "bad request: " + "; ".join(e.get("msg", "") for e in exc.errors()))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return error(500, f"internal error ({type(exc).__name__}); the server log has the details")

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/model", summary="The loaded model, the upload limits and whether live mode is on")
    async def model():
        return {**service.model, "workers": service.workers,
                "limits": service.limits.to_dict(), "live": live.settings.enabled,
                "version": __version__}

    @app.post("/api/classify", summary="Classify an uploaded audio file (multipart field 'file')")
    async def classify(request: Request):
        try:
            upload = await read_upload(request, UPLOAD_FIELD, service.limits.max_upload_bytes)
            return await run_in_threadpool(service.classify_bytes, upload.data, upload.filename)
        except (UploadError, ClassifyError) as exc:
            log.info("classify refused (%d): %s", exc.status, exc.message)
            return error(exc.status, exc.message)

    @app.get("/api/live", summary="Server-sent events: one decision per hop from the server's microphone")
    async def live_events():
        return StreamingResponse(live.events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app
