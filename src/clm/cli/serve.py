"""``clm serve RUN_DIR [--host H] [--port P]``: play and judge a levels run's new levels in the browser."""

from __future__ import annotations

import argparse
import errno
import socket

from clm.core.errors import UserError
from clm.serve.sources import RunLevels, check_levels_run


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve", help="a local web app: generate levels from a levels run, play them, keep favourites",
        description="Serves a page (http://HOST:PORT/) that generates levels on demand from a finished levels run "
                    "(difficulty and novelty as clm generate), lets a person play them with the keyboard and keeps "
                    "the ones they mark in RUN_DIR/favourites.txt, which `clm run --data RUN_DIR/favourites.txt` "
                    "takes back. Binds to 127.0.0.1 unless --host says otherwise.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a folder a levels `clm run` wrote")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the level searches")
    parser.set_defaults(func=cmd_serve)


def check_port(host: str, port: int) -> None:
    """A UserError (exit 2) when ``host:port`` cannot be bound (in use, or not an address of this machine)."""
    if not 0 < port < 65536:
        raise UserError(f"--port must lie in 1..65535, got {port}", exit_code=2)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"--host {host}: not an address this machine knows ({e.strerror})", exit_code=2) from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} on {host} is in use; choose another with --port", exit_code=2) from None
            raise UserError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --host or --port",
                            exit_code=2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    check_levels_run(args.run_dir)  # before the slow load: a wrong folder is said at once
    check_port(args.host, args.port)
    print(f"loading {args.run_dir} ...", flush=True)
    # the web stack (FastAPI, pydantic, uvicorn) is read only by this command, not at every `clm` start
    import uvicorn

    from clm.serve.app import create_app

    app = create_app(RunLevels(args.run_dir, seed=args.seed))
    print(f"clm serve: http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
