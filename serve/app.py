"""The web app: the page, ``POST /api/classify``, ``GET /api/model`` and ``GET /api/live``.

``create_app(service, live)`` builds a FastAPI app around a loaded ``GenreService`` (the upload
classifiers) and a ``LiveHub`` (the server's microphone). Every error a client can cause is a 4xx
with a JSON body ``{"error": "..."}`` that the page shows as it is; the server keeps serving.
Inference runs in Starlette's thread pool, so the event loop stays free for other requests.

Who may use it (``Access``, enforced by ``Guard`` before anything else): a request whose ``Host``
is not a name of this server is refused 421 (a web page that points its own domain at 127.0.0.1,
"DNS rebinding", sends its own name), one that a page of another origin sends (``Origin``, or
``Sec-Fetch-Site`` for the API) 403, unless that origin is allowed (``--allow-origin``); and
where the server has a token (always off loopback unless ``--no-token``) the API answers 401
without it: ``Authorization: Bearer TOKEN``, ``?token=TOKEN``, or the cookie the page sets when
opened as ``/?token=TOKEN``.
"""
from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection

from edge_genre import __version__
from edge_genre.serve.live import LiveHub, LiveSettings
from edge_genre.serve.service import ClassifyError, GenreService
from edge_genre.serve.upload import Timeouts, UploadError, read_upload

log = logging.getLogger("edge_genre.serve")

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The multipart form field that carries the audio file.
UPLOAD_FIELD = "file"


#: Where the token is accepted: the API, the live stream and the API docs.
PROTECTED_PREFIX = "/api/"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def new_token() -> str:
    return secrets.token_urlsafe(24)


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, as browsers send ``Origin``; ValueError otherwise."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") \
            or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], e.g. "
                         "http://localhost:3000)")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _host_name(host: str) -> str:
    """The name in a ``Host`` header, without its port or IPv6 brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    """Who may use the server.

    Parameters
    ----------
    hosts : the names a ``Host`` header may carry (lower case, no port).
    any_ip : also any IP address as ``Host`` (a server bound to all addresses; an address is
        never a rebound name).
    origins : other origins whose pages may call the API (``scheme://host[:port]``).
    token : required on the API when set; None: no token.
    """

    hosts: frozenset[str] = LOOPBACK_NAMES
    any_ip: bool = False
    origins: frozenset[str] = field(default_factory=frozenset)
    token: str | None = None

    @classmethod
    def for_bind(cls, host: str, token: str | None = None, origins=(), hosts=()) -> "Access":
        """What a server bound to ``host`` accepts: its address and localhost; off loopback also
        this machine's names and, bound to all addresses, any address."""
        bound = _host_name(host)
        names = set(LOOPBACK_NAMES) | {bound} | {h.lower() for h in hosts}
        loopback = bound == "localhost" or (
            _is_ip(bound) and ipaddress.ip_address(bound).is_loopback)
        if not loopback:
            machine = socket.gethostname().lower()
            names |= {machine, machine + ".local"}  # (no DNS look-up: it can take seconds)
        return cls(hosts=frozenset(names), any_ip=is_wildcard(host),
                   origins=frozenset(normalise_origin(o) for o in origins), token=token)

    def host_allowed(self, host: str | None) -> bool:
        if host is None:  # HTTP/1.0 without Host: no browser sends that
            return True
        name = _host_name(host)
        return name in self.hosts or (self.any_ip and _is_ip(name))

    def token_cookie(self, port) -> str:
        """Cookie names are per host, not per port: each server has its own."""
        return f"edge-genre-token-{port}"


class Guard:
    """ASGI middleware that enforces ``Access`` on every HTTP request, before the app."""

    def __init__(self, app, access: Access):
        self.app, self.access = app, access

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self.check(HTTPConnection(scope))
        if refusal is not None:
            return await refusal(scope, receive, send)
        return await self.app(scope, receive, send)

    def check(self, conn: HTTPConnection):
        access, path = self.access, conn.scope["path"]
        host = conn.headers.get("host")
        if not access.host_allowed(host):
            log.warning("refused %s %s: Host %r is not this server",
                        conn.scope["method"], path, host)
            return error(421, f"this server does not answer to the name {_host_name(host)!r}")
        origin = conn.headers.get("origin")
        foreign = False
        if origin is not None:
            own = f"{conn.scope.get('scheme', 'http')}://{host}".lower() if host else None
            foreign = origin.lower() != own and origin.lower() not in access.origins
        elif path.startswith(PROTECTED_PREFIX):
            # A browser's request from another site without Origin (<img>, <script>, ...).
            foreign = conn.headers.get("sec-fetch-site", "none") in ("cross-site", "same-site")
        if foreign:
            log.warning("refused %s %s from origin %s", conn.scope["method"], path,
                        origin or conn.headers.get("sec-fetch-site"))
            return error(403, f"requests from other origins ({origin or 'another site'}) are "
                              "refused; start the server with --allow-origin ORIGIN to allow one")
        if access.token is None:
            return None
        cookie = access.token_cookie(conn.scope["server"][1] if conn.scope.get("server") else "")
        if path == "/" and "token" in conn.query_params:
            if self._matches(conn.query_params["token"]):
                # The page gets the token as a cookie (its fetches and EventSource send it) and a
                # clean address without the token.
                response = RedirectResponse("/", status_code=303)
                response.set_cookie(cookie, access.token, httponly=True, samesite="strict",
                                    path="/")
                return response
            return error(401, "wrong token: open the address that 'edge-genre serve' printed")
        if not path.startswith(PROTECTED_PREFIX):
            return None  # the page and its static files hold nothing of the server's
        if conn.scope["method"] == "OPTIONS" and "access-control-request-method" in conn.headers:
            return None  # a CORS preflight from an allowed origin never carries credentials
        authorization = conn.headers.get("authorization", "")
        offered = [authorization[7:].strip() if authorization[:7].lower() == "bearer " else None,
                   conn.query_params.get("token"), conn.cookies.get(cookie)]
        if any(self._matches(t) for t in offered):
            return None
        return error(401, "this server needs its access token: open the address with ?token= that "
                          "'edge-genre serve' printed, or send 'Authorization: Bearer TOKEN'",
                     {"WWW-Authenticate": "Bearer"})

    def _matches(self, offered: str | None) -> bool:
        return offered is not None and secrets.compare_digest(
            offered.encode("utf-8", "surrogateescape"), self.access.token.encode())


def create_app(service: GenreService, live: LiveHub | None = None, *,
               access: Access | None = None, timeouts: Timeouts | None = None) -> FastAPI:
    """The edge-genre web app around a loaded service (and a live hub; None: live mode off).

    ``access`` says who may use it (default: loopback names, no other origin, no token);
    ``timeouts`` bound how long an upload may take to arrive."""
    live = live or LiveHub(service.model_path, settings=LiveSettings(enabled=False))
    access = access or Access()
    timeouts = timeouts or Timeouts()

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
            upload = await read_upload(request, UPLOAD_FIELD, service.limits.max_upload_bytes,
                                       timeouts)
            parcel, name = [upload.data], upload.filename
            del upload  # the service drops the bytes and then trims the heap
            return await run_in_threadpool(service.classify_upload, parcel, name)
        except (UploadError, ClassifyError) as exc:
            log.info("classify refused (%d): %s", exc.status, exc.message)
            return error(exc.status, exc.message,
                         {"Connection": "close"} if getattr(exc, "close", False) else None)

    @app.get("/api/live", summary="Server-sent events: one decision per hop from the server's microphone")
    async def live_events():
        return StreamingResponse(live.events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    if access.origins:  # the allowed other origins may read the answers, and send a token
        app.add_middleware(CORSMiddleware, allow_origins=sorted(access.origins),
                           allow_methods=["GET", "POST"], allow_headers=["Authorization"],
                           allow_credentials=True)
    app.add_middleware(Guard, access=access)
    app.state.access, app.state.timeouts = access, timeouts
    return app
