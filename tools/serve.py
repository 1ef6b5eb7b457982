"""Local web app and HTTP API for background matting: one process, the model loaded once, requests queued.

Open http://127.0.0.1:8000 for the page (single photo, batch, history); the API is described at /docs and
/openapi.json. It binds to 127.0.0.1 unless told otherwise; with an access token (--auth-token or
BGMATTING_AUTH_TOKEN) every request must carry it: `Authorization: Bearer <token>`, or open /?token=<token>.

Example:
    python tools/serve.py --model-type mattingrefine --model-backbone resnet50 \\
        --model-checkpoint pytorch_resnet50.pth --batch-root ~/shoots --port 8000

    # a demo/test server with an UNTRAINED model (its mattes are meaningless):
    python tools/serve.py --model-type mattingbase --model-backbone mobilenetv2 --allow-random-weights
"""
import argparse
import ipaddress
import os
import re
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bgmatting.cli_help import HelpFormatter  # noqa: E402
from bgmatting.engine.model_args import add_model_arguments  # noqa: E402
from bgmatting.engine.model_args import settings_from_args as model_settings_from_args  # noqa: E402
from bgmatting.engine.predictor import Predictor  # noqa: E402
from bgmatting.errors import UserError, cli_main  # noqa: E402
from bgmatting.serve.settings import MB, ServeSettings  # noqa: E402

RANDOM_WEIGHTS_WARNING = ("WARNING: no --model-checkpoint: serving a RANDOMLY INITIALISED model "
                          "(--allow-random-weights); its mattes are meaningless")
TOKEN_ENV = "BGMATTING_AUTH_TOKEN"
TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~+/=-]+")  # safe in a header, a query and a cookie
KEEP_ALIVE_SECONDS = 5  # idle connections between requests are closed after this


def build_parser():
    """The argument parser (predict.py's model flags, plus server, storage and limit flags)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpFormatter,
                                     epilog=__doc__[__doc__.index("Example:"):])
    model = add_model_arguments(parser, title="model (as predict.py)")
    model.add_argument("--allow-random-weights", action="store_true",
                       help="serve an untrained model when no checkpoint is given (tests, demos)")
    model.add_argument("--seed", type=int, default=0, help="initialisation seed of --allow-random-weights")
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    server.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    server.add_argument("--auth-token", default=os.environ.get(TOKEN_ENV),
                        help=f"access token every request must carry (default: ${TOKEN_ENV}, which keeps it out of "
                             "the process list); none: no authentication")
    server.add_argument("--storage-dir", default="output/serve", help="results, history and batch zips")
    server.add_argument("--batch-root", help="the only folder batch jobs may read server-side folders from")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-upload-mb", type=float, default=20.0, help="largest uploaded image")
    limits.add_argument("--max-megapixels", type=float, default=16.0, help="largest image area")
    limits.add_argument("--max-queue", type=int, default=32, help="requests queued at once; more get 503")
    limits.add_argument("--max-archive-mb", type=float, default=500.0, help="largest zip, packed and unpacked")
    limits.add_argument("--max-batch-files", type=int, default=1000, help="most images one batch job may hold")
    limits.add_argument("--keep-results", type=int, default=500,
                        help="results kept on disk (oldest deleted; a batch's own until downloaded or a day old)")
    limits.add_argument("--disk-budget-mb", type=float, default=2000.0,
                        help="disk the archives of queued batches may hold together; beyond it 503 + Retry-After")
    limits.add_argument("--upload-idle-timeout", type=float, default=30.0,
                        help="seconds an upload may stall before it is answered 408 and dropped")
    return parser


def settings_from_args(args) -> ServeSettings:
    """Check the server flags and turn them into :class:`ServeSettings` (UserError naming a bad flag)."""
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be in 1..65535, got {args.port}")
    positive = dict(max_upload_mb=args.max_upload_mb, max_megapixels=args.max_megapixels, max_queue=args.max_queue,
                    max_archive_mb=args.max_archive_mb, max_batch_files=args.max_batch_files,
                    keep_results=args.keep_results, disk_budget_mb=args.disk_budget_mb,
                    upload_idle_timeout=args.upload_idle_timeout)
    for name, value in positive.items():
        if value <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.keep_results < args.max_queue:  # a queued answer must not be deleted before it is sent
        raise UserError(f"--keep-results ({args.keep_results}) must be at least --max-queue ({args.max_queue})")
    if args.disk_budget_mb < 2 * args.max_archive_mb:  # a zip and its unpacked files exist at once
        raise UserError(f"--disk-budget-mb ({args.disk_budget_mb:g}) must be at least twice --max-archive-mb "
                        f"({args.max_archive_mb:g})")
    if args.auth_token is not None and not TOKEN_CHARACTERS.fullmatch(args.auth_token):
        raise UserError(f"--auth-token (or ${TOKEN_ENV}) must be letters, digits and ._~+/=- "
                        "(e.g. python -c 'import secrets; print(secrets.token_urlsafe())')")
    batch_root = None
    if args.batch_root is not None:
        batch_root = Path(args.batch_root).expanduser()
        if not batch_root.is_dir():
            raise UserError(f"--batch-root is not a folder: {batch_root}")
    return ServeSettings(storage_dir=Path(args.storage_dir), batch_root=batch_root,
                         max_upload_bytes=int(args.max_upload_mb * MB), max_pixels=int(args.max_megapixels * 1e6),
                         max_queue=args.max_queue, max_archive_bytes=int(args.max_archive_mb * MB),
                         max_batch_files=args.max_batch_files, keep_results=args.keep_results,
                         disk_budget_bytes=int(args.disk_budget_mb * MB), upload_idle_timeout=args.upload_idle_timeout,
                         auth_token=args.auth_token, random_weights=args.model_checkpoint is None)


def predictor_factory(args):
    """(``() -> Predictor`` for the worker thread, the model's settings); the settings are resolved (checkpoint
    found, flags checked against it) before the server starts. Refuses a missing checkpoint unless random
    weights are allowed."""
    if args.model_checkpoint is None and not args.allow_random_weights:
        raise UserError("no --model-checkpoint given; pass one (see README § Weights), or --allow-random-weights "
                        "for a demo/test server with an untrained model")
    model_settings = model_settings_from_args(args)

    def build():
        if args.model_checkpoint is None:
            warnings.filterwarnings("ignore", message="No ccache found")
            import paddle

            paddle.seed(args.seed)
        return Predictor(settings=model_settings, device=args.device, backend=None)  # the fastest runtime
    return build, model_settings


def is_loopback(host: str) -> bool:
    """True for localhost / 127.x / ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@cli_main
def main(argv=None):
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    factory, model_settings = predictor_factory(args)
    import uvicorn

    from bgmatting.serve.app import create_app
    from bgmatting.serve.worker import ModelWorker

    if settings.random_weights:
        print(RANDOM_WEIGHTS_WARNING, file=sys.stderr)
    if not is_loopback(args.host) and not settings.auth_token:
        print(f"WARNING: binding to {args.host} without --auth-token: anyone who can reach this address can use "
              "the server and see its history", file=sys.stderr)
    worker = ModelWorker(factory, settings.max_queue)
    worker.start()
    info = dict(model_type=model_settings.kind.name, backbone=model_settings.options.get("backbone"),
                checkpoint=Path(args.model_checkpoint).name if args.model_checkpoint else None)
    app = create_app(settings, worker, info)
    print(f"serving on http://{args.host}:{args.port} (API description: /docs)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_keep_alive=KEEP_ALIVE_SECONDS)


if __name__ == "__main__":
    main()
