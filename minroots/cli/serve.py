"""``minroots serve``: a checkpoint behind an OpenAI-compatible HTTP API, with a chat web page.

Book chapter 14, "Deployment" (``book/14_deployment.md``); tests in
``tests/test_serve_server.py`` and ``tests/test_serve_browser.py``.

::

    minroots serve --checkpoint runs/default                 # http://127.0.0.1:8000/
    minroots serve --checkpoint runs/default --api-key secret --max-batch 16 --port 8080

Needs the ``serve`` extra (``pip install "minroots[serve]"``: Starlette and uvicorn). The
checkpoint may be quantized (``minroots quantize``). The limits are printed at start-up; the
defaults are those of :class:`minroots.serve.app.ServeConfig`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from minroots.cli.arguments import positive_float, positive_int

__all__ = ["register", "run", "default_model_name"]


def register(subparsers) -> None:
    """Add ``serve`` to the ``minroots`` sub-commands."""
    from minroots.serve.app import ServeConfig

    d = ServeConfig()
    srv = subparsers.add_parser("serve", help="serve a checkpoint over an OpenAI-compatible HTTP "
                                "API, with a chat page", description="Serve a checkpoint: "
                                "/v1/completions, /v1/chat/completions, /v1/models, /health, and "
                                "a chat page at /. Concurrent requests are decoded together.")  # fmt: skip
    srv.add_argument("--checkpoint", required=True, metavar="DIR",
                     help="a run's output folder (its latest checkpoint) or a checkpoint folder")  # fmt: skip
    srv.add_argument("--host", default=d.host, help="address to listen on (%(default)s: this "
                     "machine only; 0.0.0.0 opens it to the network)")  # fmt: skip
    srv.add_argument("--port", type=int, default=d.port, help="port (%(default)s; 0: any free one)")
    srv.add_argument("--api-key", default=None, metavar="KEY",
                     help="require 'Authorization: Bearer KEY' on /v1/ (default: no key)")  # fmt: skip
    srv.add_argument("--max-batch", type=positive_int, default=d.max_batch, metavar="N",
                     help="sequences decoded together, each with a cache slot (%(default)s)")  # fmt: skip
    srv.add_argument("--max-queue", type=int, default=d.max_queue, metavar="N",
                     help="sequences that may wait for a slot; more get 429 (%(default)s)")  # fmt: skip
    srv.add_argument("--max-tokens", type=positive_int, default=d.max_tokens, metavar="N",
                     help="the most tokens a request may ask for (%(default)s)")  # fmt: skip
    srv.add_argument("--max-body", type=positive_int, default=d.max_body, metavar="BYTES",
                     help="largest request body; larger get 413 (%(default)s)")  # fmt: skip
    srv.add_argument("--request-timeout", type=positive_float, default=d.request_timeout,
                     metavar="SECONDS", help="time from a request's arrival to its last token "
                     "(%(default)s)")  # fmt: skip
    srv.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                     help="a web origin allowed to call the API from a browser (repeat; "
                     "default: none)")  # fmt: skip
    srv.add_argument("--model-name", default=None, metavar="NAME",
                     help="the model id clients pass (default: the run's folder name)")  # fmt: skip
    srv.set_defaults(func=run)


def default_model_name(checkpoint) -> str:
    """The run's folder name: ``runs/default`` and ``runs/default/checkpoints/step-00001700``
    both give ``"default"``."""
    path = Path(checkpoint).resolve()
    if re.fullmatch(r"step-\d+", path.name) and path.parent.name == "checkpoints":
        path = path.parent.parent
    return path.name or "minroots"


def run(args) -> int:
    """Load the checkpoint, print the model and the limits, serve until Ctrl+C."""
    try:
        import uvicorn

        from minroots.serve.app import ServeConfig, create_app
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            f"minroots serve: needs {exc.name}: pip install 'minroots[serve]'"
        ) from None
    from minroots.serve.chat_format import load_chat_format
    from minroots.training.checkpoint import load_model, load_tokenizer, resolve_checkpoint

    if args.max_queue < 0:
        raise ValueError(f"--max-queue: must be >= 0, got {args.max_queue}")
    folder = resolve_checkpoint(args.checkpoint)
    config = ServeConfig(host=args.host, port=args.port, api_key=args.api_key,
                         max_batch=args.max_batch, max_queue=args.max_queue,
                         max_tokens=args.max_tokens, max_body=args.max_body,
                         request_timeout=args.request_timeout, cors_origins=args.cors_origin,
                         model_name=args.model_name or default_model_name(args.checkpoint))  # fmt: skip
    model = load_model(folder)
    tokenizer = load_tokenizer(folder)
    chat = load_chat_format(folder, tokenizer)
    app = create_app(model, tokenizer, config, chat)
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port,
                                           log_level="info", access_log=False,
                                           limit_concurrency=config.max_batch + config.max_queue + 16,
                                           timeout_graceful_shutdown=5))  # fmt: skip
    print(f"minroots serve: model {config.model_name!r} from {folder} "
          f"({model.num_parameters():,} parameters, context {model.config.block_size}, "
          f"{chat.name} chat format)", file=sys.stderr)  # fmt: skip
    print(f"minroots serve: limits: {config.describe()}", file=sys.stderr)
    server.run()  # uvicorn prints the address ("Uvicorn running on http://...")
    return 0
