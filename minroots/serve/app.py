"""The HTTP server: OpenAI's routes on Starlette, with the API key, the limits and the web page.

Book chapter 14, "Deployment" (``book/14_deployment.md``); tests in
``tests/test_serve_server.py`` and ``tests/test_serve_browser.py``.

=============================  ==================================================================
route                          answer
=============================  ==================================================================
``GET /``                      the chat page (``minroots/serve/static/index.html``, no CDN)
``GET /health``                ``{"status": "ok", ...}`` and the queue's counters (no key needed)
``GET /v1/models``             the one model served, with its context length
``POST /v1/completions``       continue a prompt (:mod:`minroots.serve.protocol`)
``POST /v1/chat/completions``  answer a conversation (:mod:`minroots.serve.chat_format`)
=============================  ==================================================================

Starlette parses HTTP and routes; uvicorn runs it (``minroots serve``, or
:class:`BackgroundServer` inside a notebook or a test). Each generation request is checked
(:func:`~minroots.serve.protocol.parse_request`), tokenized, turned into one
:class:`~minroots.serve.engine.Sequence` per choice and handed to the
:class:`~minroots.serve.scheduler.Scheduler`; its events come back on an ``asyncio.Queue``. A
streamed answer is a ``text/event-stream`` of chunks; if the client goes away, Starlette cancels
the stream and its ``finally`` cancels the sequences, which frees their slots at the next step.
A non-streamed request watches for the disconnect itself.

**Safe defaults**: the server binds to 127.0.0.1 (this machine only); no CORS headers unless
origins are given; an API key, when set, is required on ``/v1/`` (compared in constant time);
every limit below is printed at start-up.

(This file is longer than the 400 lines the package aims for because it is one application: the
routes, the streamed and whole answers and the background server share the served model, its
limits and its queue. The request checks are in :mod:`minroots.serve.protocol`, the batching in
:mod:`minroots.serve.scheduler` and :mod:`minroots.serve.engine`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from importlib import resources

from minroots.serve.chat_format import ChatFormat, PlainChatFormat
from minroots.serve.engine import Engine, SamplingParams, Sequence
from minroots.serve.protocol import (
    DONE,
    APIError,
    chat_chunk,
    chat_response,
    completion_chunk,
    completion_response,
    parse_json,
    parse_request,
    sse,
    usage,
)
from minroots.serve.scheduler import QueueFull, Scheduler
from minroots.serve.text import TextStream
from minroots.validation import integer, positive_int, real

__all__ = ["ServeConfig", "create_app", "BackgroundServer"]


@dataclass
class ServeConfig:
    """What ``minroots serve`` is allowed to do; each field is a command-line option."""

    host: str = "127.0.0.1"  # this machine only; "0.0.0.0" serves the whole network
    port: int = 8000
    api_key: str | None = None  # required as "Authorization: Bearer KEY" on /v1/ when set
    max_batch: int = 8  # sequences decoded together (each holds a key/value cache slot)
    max_queue: int = 32  # sequences that may wait for a slot; more get 429
    max_tokens: int = 512  # the most tokens one request may ask for
    max_body: int = 1_000_000  # bytes of a request body; more get 413
    request_timeout: float = 120.0  # seconds from arrival to the last token
    cors_origins: tuple = ()  # web origins allowed to call the API from a browser (none)
    model_name: str = "minroots"  # the id clients pass as "model"

    def __post_init__(self):
        where = "ServeConfig"
        integer(where, "port", self.port, low=0, high=65535)
        for name in ("max_batch", "max_tokens", "max_body"):
            positive_int(where, name, getattr(self, name))
        integer(where, "max_queue", self.max_queue, low=0)
        real(where, "request_timeout", self.request_timeout, low=0, low_open=True)
        self.cors_origins = tuple(self.cors_origins)

    def describe(self) -> str:
        """The limits, one line, as printed at start-up."""
        return (f"max-batch {self.max_batch}, max-queue {self.max_queue}, max-tokens "
                f"{self.max_tokens}, max-body {self.max_body} bytes, request-timeout "
                f"{self.request_timeout:g} s, API key {'required' if self.api_key else 'off'}, "
                f"CORS {', '.join(self.cors_origins) or 'off'}")  # fmt: skip


@dataclass
class _Served:
    """Everything a request handler needs (``app.state.served``)."""

    model: object
    tokenizer: object
    chat_format: ChatFormat
    config: ServeConfig
    scheduler: Scheduler
    page: bytes
    created: int = field(default_factory=lambda: int(time.time()))


def create_app(model, tokenizer, config: ServeConfig | None = None,
               chat_format: ChatFormat | None = None):  # fmt: skip
    """The Starlette application serving ``model`` (a decoder-only minroots model) with
    ``tokenizer``; ``chat_format`` defaults to the plain format. The engine's thread starts and
    stops with the application (its lifespan)."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.routing import Route

    config = config or ServeConfig()
    scheduler = Scheduler(Engine(model, config.max_batch), config.max_queue, config.request_timeout)
    page = resources.files("minroots.serve").joinpath("static/index.html").read_bytes()
    served = _Served(model, tokenizer, chat_format or PlainChatFormat(tokenizer), config,
                     scheduler, page)  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(app):
        scheduler.start()
        try:
            yield
        finally:
            scheduler.close()

    routes = [
        Route("/", _page, methods=["GET"]),
        Route("/health", _health, methods=["GET"]),
        Route("/v1/models", _models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", _model, methods=["GET"]),
        Route("/v1/completions", _completions, methods=["POST"]),
        Route("/v1/chat/completions", _chat_completions, methods=["POST"]),
    ]
    middleware = []
    if config.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                                     allow_methods=["GET", "POST"],
                                     allow_headers=["Authorization", "Content-Type"]))  # fmt: skip
    handlers = {APIError: _api_error, HTTPException: _http_error, Exception: _server_error}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers,
                    lifespan=lifespan)  # fmt: skip
    app.state.served = served
    return app


# --- errors -------------------------------------------------------------------------------------
def _json(data, status: int = 200, headers=None):
    from starlette.responses import JSONResponse

    return JSONResponse(data, status_code=status, headers=headers)


async def _api_error(request, exc: APIError):
    return _json(exc.body(), exc.status, exc.headers)


async def _http_error(request, exc):
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    error = APIError(
        exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code=code
    )
    return _json(error.body(), exc.status_code)


async def _server_error(request, exc):
    error = APIError(500, f"server: failed with {type(exc).__name__}: {exc}", type="server_error")
    return _json(error.body(), 500)


def _authorize(request) -> None:
    key = request.app.state.served.config.api_key
    if not key:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise APIError(401, "Authorization: no API key given; send the header 'Authorization: "
                       "Bearer KEY' (the key minroots serve was started with)",
                       code="invalid_api_key")  # fmt: skip
    if not hmac.compare_digest(given.strip().encode(), key.encode()):
        raise APIError(401, "Authorization: incorrect API key provided", code="invalid_api_key")


def _check_model(served: _Served, name) -> None:
    if name is not None and name != served.config.model_name:
        raise APIError(404, f"model: the model {name!r} does not exist; this server serves "
                       f"{served.config.model_name!r}", param="model", code="model_not_found")  # fmt: skip


# --- plain routes -------------------------------------------------------------------------------
async def _page(request):
    from starlette.responses import Response

    return Response(request.app.state.served.page, media_type="text/html; charset=utf-8")


async def _health(request):
    served = request.app.state.served
    return _json({"status": "ok", "model": served.config.model_name,
                  "context_length": served.model.config.block_size,
                  "chat_format": served.chat_format.name, **served.scheduler.stats()})  # fmt: skip


def _model_card(served: _Served) -> dict:
    return {"id": served.config.model_name, "object": "model", "created": served.created,
            "owned_by": "minroots", "context_length": served.model.config.block_size}  # fmt: skip


async def _models(request):
    _authorize(request)
    return _json({"object": "list", "data": [_model_card(request.app.state.served)]})


async def _model(request):
    _authorize(request)
    served = request.app.state.served
    _check_model(served, request.path_params["model_id"])
    return _json(_model_card(served))


# --- generation ---------------------------------------------------------------------------------
async def _completions(request):
    return await _generate(request, chat=False)


async def _chat_completions(request):
    return await _generate(request, chat=True)


async def _read_body(request, limit: int) -> bytes:
    too_big = APIError(413, f"request body: larger than {limit} bytes (--max-body)",
                       code="request_too_large")  # fmt: skip
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _encode(served: _Served, req) -> tuple[list[list[int]], list[str]]:
    """Token ids of each prompt (one for chat) and how each was given, checked against the
    vocabulary and the context."""
    tok, block = served.tokenizer, served.model.config.block_size
    if req.chat:
        try:
            prompts = [served.chat_format.prompt_ids(req.messages)]
        except (ValueError, KeyError) as exc:
            raise APIError(400, f"chat.completions: messages: {exc}", param="messages") from None
    else:
        prompts = []
        for p in req.prompts:
            try:
                prompts.append(tok.encode(p) if isinstance(p, str) else [int(i) for i in p])
            except ValueError as exc:
                raise APIError(400, f"completions: prompt: {exc}", param="prompt") from None
    vocab = served.model.config.vocab_size
    for ids in prompts:
        if not ids:
            raise APIError(400, "prompt: encodes to no tokens; give at least one character",
                           param="prompt")  # fmt: skip
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            raise APIError(400, f"prompt: token ids must be in [0, {vocab}), got {bad[0]}",
                           param="prompt")  # fmt: skip
        if len(ids) > block:
            raise APIError(400, f"{'messages' if req.chat else 'prompt'}: this model's maximum "
                           f"context length is {block} tokens, but "
                           f"the prompt has {len(ids)} tokens; shorten it",
                           param="messages" if req.chat else "prompt",
                           code="context_length_exceeded")  # fmt: skip
    return prompts


def _stop_ids(served: _Served, chat: bool) -> tuple:
    if chat:
        return served.chat_format.stop_ids
    special = getattr(served.tokenizer, "special_tokens", None) or {}
    return tuple(i for s, i in special.items() if s == "<|endoftext|>")


async def _generate(request, chat: bool):
    from starlette.responses import StreamingResponse

    served: _Served = request.app.state.served
    cfg = served.config
    _authorize(request)
    body = parse_json(await _read_body(request, cfg.max_body))
    req = parse_request(body, chat=chat, max_tokens_cap=cfg.max_tokens, max_n=cfg.max_batch)
    _check_model(served, req.model)
    prompts = _encode(served, req)
    if len(prompts) * req.n > served.scheduler.capacity:  # it would never fit: not a 429
        raise APIError(400, f"n: the request asks for {len(prompts) * req.n} sequences (prompts x "
                       f"n), more than this server holds at once ({served.scheduler.capacity})",
                       param="n")  # fmt: skip
    decode = served.chat_format.decode if chat else (lambda ids: served.tokenizer.decode(ids))
    stop = req.stop if req.stop_given else (served.chat_format.stop if chat else ())
    seqs, index = [], {}
    for p, ids in enumerate(prompts):
        for j in range(req.n):
            params = SamplingParams(req.max_tokens, req.temperature, req.top_k, req.top_p,
                                    None if req.seed is None else req.seed + j,
                                    _stop_ids(served, chat))  # fmt: skip
            seq = Sequence(ids, params, TextStream(decode, stop))
            index[seq] = p * req.n + j
            seqs.append(seq)
    loop, queue = asyncio.get_running_loop(), asyncio.Queue()

    def deliver(events):  # called from the engine's thread, once per step
        loop.call_soon_threadsafe(queue.put_nowait, events)

    try:
        served.scheduler.submit(seqs, deliver)
    except QueueFull as exc:
        raise APIError(429, str(exc), type="rate_limit_error", code="queue_full",
                       headers={"Retry-After": "1"}) from None  # fmt: skip
    rid = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
    answer = _Answer(served, req, rid, seqs, index, queue, sum(len(p) for p in prompts))
    if req.stream:
        return StreamingResponse(answer.stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})  # fmt: skip
    return _json(await answer.collect(request))


class _Answer:
    """The events of one request's sequences, turned into a response or a stream of chunks."""

    def __init__(self, served, req, rid, seqs, index, queue, prompt_tokens):
        self.served, self.req, self.id, self.seqs = served, req, rid, seqs
        self.index, self.queue, self.prompt_tokens = index, queue, prompt_tokens
        self.created = int(time.time())
        self.open = set(seqs)

    def usage(self) -> dict:
        return usage(self.prompt_tokens, sum(len(s.tokens) for s in self.seqs))

    def _failure(self, reason: str) -> APIError:
        if reason == "timeout":
            return APIError(503, "request: waited for a slot longer than --request-timeout="
                            f"{self.served.config.request_timeout:g} s; retry later",
                            type="server_error", code="timeout")  # fmt: skip
        return APIError(500, "server: failed while generating (see its log)", type="server_error")

    async def collect(self, request) -> dict:
        """Wait for every sequence; a client that disconnects cancels them."""
        watcher = asyncio.ensure_future(_until_disconnect(request, self.queue))
        texts = {s: [] for s in self.seqs}
        try:
            while self.open:
                events = await self.queue.get()
                if events is None:  # the client went away
                    return {}
                for event in events:
                    texts[event.sequence].append(event.text)
                    if event.finish_reason is not None:
                        self.open.discard(event.sequence)
                        if event.finish_reason in ("timeout", "error"):
                            raise self._failure(event.finish_reason)
        finally:
            watcher.cancel()
            if self.open:
                self.served.scheduler.cancel(list(self.open))
        build = chat_response if self.req.chat else completion_response
        choices = sorted((self.index[s], "".join(texts[s]), s.finish_reason) for s in self.seqs)
        return build(self.id, self.created, self.served.config.model_name, choices, self.usage())

    async def stream(self):
        """Server-sent events: the chunks, maybe the usage, then ``[DONE]``."""
        model = self.served.config.model_name
        try:
            if self.req.chat:
                for i in sorted(self.index.values()):
                    yield sse(chat_chunk(self.id, self.created, model, i, {"role": "assistant",
                                                                          "content": ""}))  # fmt: skip
            while self.open:
                chunks = self._events(await self.queue.get())
                if chunks:
                    yield b"".join(chunks)
            if self.req.include_usage:
                yield sse({"id": self.id, "object": "chat.completion.chunk" if self.req.chat
                           else "text_completion", "created": self.created, "model": model,
                           "choices": [], "usage": self.usage()})  # fmt: skip
            yield DONE
        finally:  # also when the client went away and Starlette cancelled this stream
            if self.open:
                self.served.scheduler.cancel(list(self.open))

    def _events(self, events) -> list[bytes]:
        """The server-sent events of one step's events (all sent in one write)."""
        out = []
        for event in events:
            seq, reason = event.sequence, event.finish_reason
            if reason in ("timeout", "error"):
                self.open.discard(seq)
                out.append(sse(self._failure(reason).body()))
                continue
            i = self.index[seq]
            if event.text:
                out.append(sse(self._chunk(i, event.text)))
            if reason is not None:
                self.open.discard(seq)
                out.append(sse(self._chunk(i, None, reason)))
        return out

    def _chunk(self, i: int, text: str | None, reason: str | None = None) -> dict:
        model = self.served.config.model_name
        if self.req.chat:
            delta = {} if text is None else {"content": text}
            return chat_chunk(self.id, self.created, model, i, delta, reason)
        return completion_chunk(self.id, self.created, model, i, text or "", reason)


async def _until_disconnect(request, queue: asyncio.Queue) -> None:
    """Put ``None`` on ``queue`` when the client disconnects (the body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            queue.put_nowait(None)
            return


# --- running it ---------------------------------------------------------------------------------
class BackgroundServer:
    """uvicorn serving ``app`` in a thread of this process (a notebook, a test); ``port=0`` picks
    a free port. Use as a context manager, or call ``start()`` and ``stop()``.

    ::

        with BackgroundServer(create_app(model, tokenizer)) as server:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="none")
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        import uvicorn

        self.config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                     access_log=False, lifespan="on")  # fmt: skip
        self.server = uvicorn.Server(self.config)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread = threading.Thread(target=self.server.run, name="minroots-http", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("BackgroundServer: uvicorn did not start (see its log)")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=30)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
