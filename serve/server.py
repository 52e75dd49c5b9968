"""The server's runtime: the listening socket, uvicorn's h11 protocol with a deadline on request
heads, uvicorn's server that ends the live streams, and ``serve``, which builds the app on them
and runs it until stopped. ``serve.cli`` parses and checks the arguments and calls ``serve``."""
from __future__ import annotations

import logging
import sys

from edge_genre.errors import EdgeGenreError

log = logging.getLogger("edge_genre.serve")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine's loopback: only local clients reach the server there."""
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


def protocol_class(header_timeout: float):
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


def server_class():
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


def serve(host: str, port: int, *, model, backend, threads, workers: int, limits, timeouts,
          access, token: str | None, live_settings) -> int:
    """Bind ``host:port`` (a taken port fails before the model loads), load the model into the
    upload service and the live hub, print the page's address and serve until stopped."""
    from urllib.parse import quote

    import uvicorn

    from edge_genre.serve.app import create_app
    from edge_genre.serve.live import LiveHub
    from edge_genre.serve.service import GenreService

    loopback = is_loopback(host)  # the address asked for, as the token default was chosen
    sock = bind(host, port)
    try:
        service = GenreService(model, backend=backend, threads=threads, workers=workers,
                               limits=limits)
        live = LiveHub(service.model_path, backend=service.backend, threads=threads,
                       settings=live_settings)
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
                                timeout_keep_alive=5, http=protocol_class(timeouts.header))
        try:
            server_class()(config, on_exit=live.close).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown
            pass
        finally:
            live.close()
            live.join()
    finally:
        sock.close()
    return 0
