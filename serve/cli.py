"""``edge-genre serve``: the genre web page and its HTTP API (light at import: argparse only)."""
from __future__ import annotations

import argparse
import sys

from edge_genre.edge.cli import add_model_args


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="serve the genre web page and HTTP API",
        description="A web page and HTTP API that classify uploaded audio files, and show what "
                    "the server's microphone hears (live mode). Binds to loopback unless "
                    "--host says otherwise. API: POST /api/classify (multipart field 'file'), "
                    "GET /api/model, GET /api/live (server-sent events); docs at /api/docs.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 serves the whole network)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    add_model_args(p)
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="interpreters classifying uploads at the same time (default 1; each holds "
                        "the model and one decoded upload in memory)")
    p.add_argument("--max-upload-mb", type=float, default=50.0, metavar="MB",
                   help="largest upload accepted, in MB (default 50)")
    p.add_argument("--max-seconds", type=float, default=600.0, metavar="S",
                   help="longest audio accepted, in seconds (default 600)")
    p.add_argument("--no-mic", action="store_true", help="turn live mode (the server's microphone) off")
    p.add_argument("--device", metavar="NAME|INDEX",
                   help="capture device for live mode (default: the system's default)")
    p.set_defaults(func=run_serve)


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int):
    """A listening socket, so that a taken port is one clear error and port 0 can be reported."""
    import socket

    from edge_genre.errors import EdgeGenreError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise EdgeGenreError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.set_inheritable(True)
    return sock


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, which also ends the live streams when asked to stop: they never end
        by themselves, and uvicorn waits for open connections before it shuts down."""

        def __init__(self, config, on_exit):
            super().__init__(config)
            self._on_exit = on_exit

        def handle_exit(self, sig, frame) -> None:
            self._on_exit()
            super().handle_exit(sig, frame)

    return Server


def run_serve(args) -> int:
    import logging

    import uvicorn

    from edge_genre.serve.app import create_app
    from edge_genre.serve.live import LiveHub, LiveSettings
    from edge_genre.serve.service import GenreService, Limits

    log = logging.getLogger("edge_genre.serve")
    if args.max_upload_mb <= 0 or args.max_seconds <= 0 or args.workers < 1:
        from edge_genre.errors import EdgeGenreError

        raise EdgeGenreError("--max-upload-mb, --max-seconds and --workers must be positive")
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 1e6), max_seconds=args.max_seconds)
    sock = bind(args.host, args.port)  # a taken port fails before the model loads
    try:
        service = GenreService(args.model, backend=args.backend, threads=args.threads,
                               workers=args.workers, limits=limits)
        live = LiveHub(service.model_path, backend=service.backend, threads=args.threads,
                       settings=LiveSettings(enabled=not args.no_mic, device=args.device))
        app = create_app(service, live)
        host, port = sock.getsockname()[:2]
        if not is_loopback(args.host):
            log.warning("serving on %s, reachable from other machines: anyone who can reach this port "
                        "can upload files and, unless --no-mic, hear what the microphone hears", host)
        shown = f"[{host}]" if ":" in host else host
        print(f"edge-genre serve: http://{shown}:{port}/ (model {service.model_path.name}, "
              f"{service.backend}; live mode {'on' if live.settings.enabled else 'off'})",
              file=sys.stderr, flush=True)
        config = uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=3,
                                timeout_keep_alive=5)
        try:
            _server_class()(config, on_exit=live.close).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown
            pass
        finally:
            live.close()
            live.join()
    finally:
        sock.close()
    return 0
