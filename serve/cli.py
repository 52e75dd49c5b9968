"""``edge-genre serve``: the genre web page and its HTTP API (light at import: argparse only)."""
from __future__ import annotations

import sys

from edge_genre.edge.cli_args import add_model_args, port_number


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="serve the genre web page and HTTP API",
        description="A web page and HTTP API that classify uploaded audio files, and show what "
                    "the server's microphone hears (live mode). Binds to loopback unless "
                    "--host says otherwise. API: POST /api/classify (multipart field 'file'), "
                    "GET /api/model, GET /api/live (server-sent events); docs at /api/docs.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 serves the whole network)")
    p.add_argument("--port", type=port_number, default=8000, help="TCP port (default 8000; 0 picks a free one)")
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
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="let pages of this origin (scheme://host[:port]) use the API; repeatable "
                        "(default: only the server's own page)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another name clients reach this server by (Host header); repeatable "
                        "(default: the bound address, localhost and, off loopback, this "
                        "machine's names)")
    token = p.add_mutually_exclusive_group()
    token.add_argument("--token", metavar="TOKEN",
                       help="the access token the API requires (default off loopback: a new "
                            "random one, printed at start as a URL with ?token=)")
    token.add_argument("--no-token", action="store_true",
                       help="serve the API without a token even off loopback (anyone who can "
                            "reach the port can use it)")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                   help="seconds a client has to send a request's headers (default 10)")
    p.add_argument("--idle-timeout", type=float, default=10.0, metavar="S",
                   help="longest pause in an upload's body, in seconds (default 10)")
    p.add_argument("--body-timeout", type=float, default=120.0, metavar="S",
                   help="seconds an upload's whole body may take (default 120)")
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


def _protocol_class(header_timeout: float):
    """uvicorn's h11 protocol with a deadline on request heads.

    uvicorn bounds a head's size (h11) and the idle time between requests (``timeout_keep_alive``)
    but not time: any byte cancels the keep-alive timer, and nothing is armed before the first
    request, so a client that connects and sends nothing, or half a head, or a byte of it every
    few seconds, held its connection for ever. Here a client has ``header_timeout`` seconds from
    the first byte of a request (or from connecting) until its head is complete; the same holds
    for a body the app answered without reading (e.g. 413): the rest must arrive within it. On
    expiry a partial head is answered 408, and the connection is closed. Bodies the app reads
    have their own deadlines (``upload.Timeouts``)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Protocol(H11Protocol):
        def connection_made(self, transport) -> None:
            self._head_timer = None
            self._head_bytes = 0
            super().connection_made(transport)
            self._arm()

        def _between_requests(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(header_timeout, self._expired)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            super().data_received(data)
            if self._between_requests():
                self._head_bytes += len(data) if self.cycle is cycle else 0
                self._arm()
            else:
                self._head_bytes = 0
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._between_requests() and self.conn.their_state is not h11.IDLE:
                self._arm()  # the client still owes the rest of a body nobody reads

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _expired(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or not self._between_requests():
                return
            if self.conn.our_state is h11.IDLE and self._head_bytes:
                body = (b'{"error":"the request headers did not arrive within %g s"}'
                        % header_timeout)
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: "
                                     b"application/json\r\nconnection: close\r\n"
                                     b"content-length: %d\r\n\r\n%s" % (len(body), body))
            self.logger.info("dropped a connection from %s: no complete request within %g s",
                             "%s:%d" % self.client if self.client else "?", header_timeout)
            self.transport.close()

    return Protocol


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

    from urllib.parse import quote

    from edge_genre.errors import EdgeGenreError
    from edge_genre.serve.app import Access, create_app, new_token
    from edge_genre.serve.live import LiveHub, LiveSettings
    from edge_genre.serve.service import GenreService, Limits
    from edge_genre.serve.upload import Timeouts

    log = logging.getLogger("edge_genre.serve")
    if args.max_upload_mb <= 0 or args.max_seconds <= 0 or args.workers < 1:
        raise EdgeGenreError("--max-upload-mb, --max-seconds and --workers must be positive")
    if min(args.header_timeout, args.idle_timeout, args.body_timeout) <= 0:
        raise EdgeGenreError("--header-timeout, --idle-timeout and --body-timeout must be positive")
    if args.token is not None and not args.token.strip():
        raise EdgeGenreError("--token must not be empty (--no-token serves without one)")
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 1e6), max_seconds=args.max_seconds)
    timeouts = Timeouts(header=args.header_timeout, idle=args.idle_timeout, body=args.body_timeout)
    loopback = is_loopback(args.host)
    token = args.token if args.token is not None else (
        None if args.no_token or loopback else new_token())
    try:
        access = Access.for_bind(args.host, token=token, origins=args.allow_origin,
                                 hosts=args.allow_host)
    except ValueError as exc:
        raise EdgeGenreError(f"--allow-origin: {exc}") from None
    sock = bind(args.host, args.port)  # a taken port fails before the model loads
    try:
        service = GenreService(args.model, backend=args.backend, threads=args.threads,
                               workers=args.workers, limits=limits)
        live = LiveHub(service.model_path, backend=service.backend, threads=args.threads,
                       settings=LiveSettings(enabled=not args.no_mic, device=args.device))
        app = create_app(service, live, access=access, timeouts=timeouts)
        host, port = sock.getsockname()[:2]
        if not loopback:
            if token is None:
                log.warning("serving on %s without a token (--no-token), reachable from other "
                            "machines: anyone who can reach this port can upload files and, unless "
                            "--no-mic, hear what the microphone hears", host)
            else:
                log.warning("serving on %s, reachable from other machines: the API needs the "
                            "token in the address below", host)
        shown = f"[{host}]" if ":" in host else host
        query = f"?token={quote(token, safe='')}" if token else ""
        print(f"edge-genre serve: http://{shown}:{port}/{query} (model {service.model_path.name}, "
              f"{service.backend}; live mode {'on' if live.settings.enabled else 'off'})",
              file=sys.stderr, flush=True)
        config = uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=3,
                                timeout_keep_alive=5, http=_protocol_class(timeouts.header))
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
