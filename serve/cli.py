"""``edge-genre serve``: the genre web page and its HTTP API (light at import: argparse only)."""
from __future__ import annotations

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


def run_serve(args) -> int:
    from edge_genre.errors import EdgeGenreError
    from edge_genre.serve.app import Access, new_token
    from edge_genre.serve.live import LiveSettings
    from edge_genre.serve.server import is_loopback, serve
    from edge_genre.serve.service import Limits
    from edge_genre.serve.upload import Timeouts

    if args.max_upload_mb <= 0 or args.max_seconds <= 0 or args.workers < 1:
        raise EdgeGenreError("--max-upload-mb, --max-seconds and --workers must be positive")
    if min(args.header_timeout, args.idle_timeout, args.body_timeout) <= 0:
        raise EdgeGenreError("--header-timeout, --idle-timeout and --body-timeout must be positive")
    if args.token is not None and not args.token.strip():
        raise EdgeGenreError("--token must not be empty (--no-token serves without one)")
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 1e6), max_seconds=args.max_seconds)
    timeouts = Timeouts(header=args.header_timeout, idle=args.idle_timeout, body=args.body_timeout)
    token = args.token if args.token is not None else (
        None if args.no_token or is_loopback(args.host) else new_token())
    try:
        access = Access.for_bind(args.host, token=token, origins=args.allow_origin,
                                 hosts=args.allow_host)
    except ValueError as exc:
        raise EdgeGenreError(f"--allow-origin: {exc}") from None
    return serve(args.host, args.port, model=args.model, backend=args.backend,
                 threads=args.threads, workers=args.workers, limits=limits, timeouts=timeouts,
                 access=access, token=token,
                 live_settings=LiveSettings(enabled=not args.no_mic, device=args.device))
