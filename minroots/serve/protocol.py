"""The OpenAI API as the server speaks it: request fields, responses, stream chunks, errors.

Book chapter 14, "Deployment" (``book/14_deployment.md``); tests in
``tests/test_serve_protocol.py`` and ``tests/test_serve_server.py``.

Two endpoints generate text: ``POST /v1/completions`` continues a ``prompt``; ``POST
/v1/chat/completions`` answers a list of ``messages``. Their fields:

==================  ===========================================================================
field               meaning here
==================  ===========================================================================
``model``           the served model's id (``GET /v1/models``); another id is a 404
``max_tokens``      tokens to generate at most (completions: 16 by default; chat: the server's
                    cap); ``max_completion_tokens`` is the chat endpoint's newer name for it
``temperature``     0 to 2 (1 by default); 0 is greedy
``top_p``           nucleus sampling, in (0, 1] (1 by default: off)
``top_k``           an extension (as in vLLM): sample among the ``k`` most likely tokens; 0, -1
                    or null: off
``stop``            a string or up to 4 strings that end the text (not included in it)
``seed``            an integer >= 0: the same request gives the same text; choice ``i`` of
                    ``n`` samples with ``seed + i``
``n``               choices per prompt (1 by default, at most the server's ``--max-batch``)
``stream``          send server-sent events, one chunk per piece of text, then ``data: [DONE]``
``stream_options``  ``{"include_usage": true}``: a last chunk with the token counts
==================  ===========================================================================

``logprobs``, penalties, ``logit_bias``, tools and ``echo`` are refused unless they ask for
nothing (``false``, ``0``, ``null``, ``{}``); a field the API does not have is refused, as OpenAI
does, so a typo does not pass silently. ``user``, ``store``, ``metadata`` and ``service_tier``
are accepted and ignored.

Every error is OpenAI's JSON shape, ``{"error": {"message", "type", "param", "code"}}``, with
the status its clients expect: 400 bad request, 401 bad key, 404 unknown model or path, 413 body
too large, 429 queue full (with ``Retry-After``), 500 a failure of the server.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass

from minroots.serve.chat_format import ROLES
from minroots.validation import integer, real

__all__ = [
    "APIError",
    "GenerationRequest",
    "parse_request",
    "parse_json",
    "usage",
    "completion_response",
    "chat_response",
    "completion_chunk",
    "chat_chunk",
    "sse",
    "DONE",
]

DONE = b"data: [DONE]\n\n"
MAX_STOP = 4  # stop strings per request, as OpenAI allows


class APIError(Exception):
    """An error answered in OpenAI's shape: ``status``, ``message``, ``type``, ``param``,
    ``code`` (and extra response ``headers``, e.g. ``Retry-After``)."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers=None):  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, dict(headers or {})

    def body(self) -> dict:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return {"error": error}


def parse_json(raw: bytes) -> dict:
    """The request body as a JSON object, or a 400."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise APIError(400, f"request body: not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise APIError(400, f"request body: must be a JSON object, got {type(body).__name__}")
    return body


@dataclass
class GenerationRequest:
    """A parsed request of either endpoint (``prompts`` for completions, ``messages`` for chat)."""

    chat: bool
    model: str | None
    max_tokens: int
    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple = ()
    stop_given: bool = False  # the request set "stop" (else a chat format's own stop applies)
    seed: int | None = None
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    prompts: list | None = None  # completions: each a str or a list of token ids
    messages: list | None = None  # chat: dicts with role, content (a str), maybe name


# fields that are accepted when they ask for nothing, and those accepted and ignored
_NEUTRAL = {"logprobs": (None, False), "top_logprobs": (None, 0), "presence_penalty": (None, 0),
            "frequency_penalty": (None, 0), "logit_bias": (None, {}), "echo": (None, False),
            "suffix": (None, ""), "tools": (None, []), "tool_choice": (None, "none"),
            "functions": (None, []), "function_call": (None, "none"),
            "parallel_tool_calls": (None, True, False)}  # fmt: skip
_IGNORED = {"user", "store", "metadata", "service_tier"}
_COMMON = {"model", "max_tokens", "temperature", "top_p", "top_k", "stop", "seed", "n", "stream",
           "stream_options"}  # fmt: skip
_FIELDS = {
    False: _COMMON | {"prompt", "best_of"},
    True: _COMMON | {"messages", "max_completion_tokens", "response_format"},
}


def parse_request(body: dict, *, chat: bool, max_tokens_cap: int, max_n: int) -> GenerationRequest:
    """Check every field of a request body and return it parsed; a bad field is a 400 naming it."""
    where = "chat.completions" if chat else "completions"
    for key in body:
        if key in _IGNORED or key in _FIELDS[chat]:
            continue
        if key in _NEUTRAL:
            if not any(_same(body[key], v) for v in _NEUTRAL[key]):
                raise APIError(400, f"{where}: {key}={body[key]!r} is not supported by this "
                               "server", param=key)  # fmt: skip
            continue
        raise APIError(400, f"{where}: unrecognized request argument supplied: {key}", param=key)

    def field(name, check, default=None, **bounds):
        value = body.get(name)
        if value is None:
            return default
        try:
            return check(where, name, value, **bounds)
        except (TypeError, ValueError) as exc:
            raise APIError(400, str(exc), param=name) from None

    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise APIError(400, f"{where}: model must be a string, got {model!r}", param="model")
    max_tokens = field("max_tokens", integer, low=1)
    if chat and max_tokens is None:
        max_tokens = field("max_completion_tokens", integer, low=1)
    if max_tokens is None:
        max_tokens = max_tokens_cap if chat else min(16, max_tokens_cap)
    if max_tokens > max_tokens_cap:
        raise APIError(400, f"{where}: max_tokens must be <= {max_tokens_cap} (this server's "
                       f"cap, --max-tokens), got {max_tokens}", param="max_tokens")  # fmt: skip
    top_k = field("top_k", integer, low=-1)
    top_p = field("top_p", real, low=0, high=1, low_open=True)
    stream = field("stream", _boolean, False)
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or set(options) - {"include_usage"}):
        raise APIError(400, f"{where}: stream_options must be an object like "
                       f'{{"include_usage": true}}, got {options!r}', param="stream_options")  # fmt: skip
    include_usage = _boolean(
        where, "stream_options.include_usage", (options or {}).get("include_usage", False)
    )
    if options is not None and not stream:
        raise APIError(400, f"{where}: stream_options is only allowed with stream=true",
                       param="stream_options")  # fmt: skip
    stop = _stop(where, body.get("stop"))
    request = GenerationRequest(
        chat=chat, model=model, max_tokens=max_tokens,
        temperature=field("temperature", real, 1.0, low=0, high=2),
        top_p=None if top_p in (None, 1.0) else top_p,
        top_k=None if top_k in (None, 0, -1) else top_k,
        stop=stop, stop_given="stop" in body and body["stop"] is not None,
        seed=field("seed", integer, low=0), n=field("n", integer, 1, low=1, high=max_n),
        stream=stream, include_usage=include_usage,
    )  # fmt: skip
    if chat:
        request.messages = _messages(where, body.get("messages"))
        fmt = body.get("response_format")
        if fmt is not None and fmt != {"type": "text"}:
            raise APIError(400, f"{where}: response_format {fmt!r} is not supported (only "
                           '{"type": "text"})', param="response_format")  # fmt: skip
    else:
        request.prompts = _prompts(where, body.get("prompt"))
        best_of = body.get("best_of")
        if best_of is not None and best_of != request.n:
            raise APIError(400, f"{where}: best_of must equal n here, got {best_of!r}",
                           param="best_of")  # fmt: skip
    return request


def _same(value, neutral) -> bool:
    """``value`` is ``neutral`` (``0`` and ``0.0`` are the same; ``False`` is not ``0``)."""
    if neutral is None or isinstance(neutral, bool) or isinstance(value, bool):
        return value is neutral
    if isinstance(neutral, numbers.Number):
        return isinstance(value, numbers.Number) and value == neutral
    return type(value) is type(neutral) and value == neutral


def _boolean(where, name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{where}: {name} must be true or false, got {value!r}")
    return value


def _stop(where: str, stop) -> tuple:
    if stop is None:
        return ()
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise APIError(400, f"{where}: stop must be a string or a list of strings, got {stop!r}",
                       param="stop")  # fmt: skip
    if len(items) > MAX_STOP:
        raise APIError(400, f"{where}: stop must hold at most {MAX_STOP} strings, got "
                       f"{len(items)}", param="stop")  # fmt: skip
    return tuple(s for s in items if s)


def _prompts(where: str, prompt) -> list:
    """A completions ``prompt``: a string, a list of strings, a list of token ids, or a list of
    lists of token ids; returned as a list of prompts (each a str or a list of ints)."""

    def ids(p):
        return isinstance(p, list) and p and all(
            isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in p)  # fmt: skip

    if isinstance(prompt, str):
        return [prompt]
    if ids(prompt):
        return [list(prompt)]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) or ids(p) for p in prompt):
        return list(prompt)
    raise APIError(400, f"{where}: prompt must be a string, a list of strings or a list of token "
                   f"ids, got {_short(prompt)}", param="prompt")  # fmt: skip


def _messages(where: str, messages) -> list:
    if not isinstance(messages, list) or not messages:
        raise APIError(400, f"{where}: messages must be a non-empty list of messages, got "
                       f"{_short(messages)}", param="messages")  # fmt: skip
    out = []
    for i, m in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(m, dict):
            raise APIError(400, f"{where}: {param} must be an object, got {_short(m)}", param=param)
        role = m.get("role")
        if role not in ROLES:
            raise APIError(400, f"{where}: {param}.role must be one of {', '.join(ROLES)}, got "
                           f"{role!r}", param=f"{param}.role")  # fmt: skip
        content = _content(where, m.get("content"), role, param)
        name = m.get("name")
        if name is not None and not isinstance(name, str):
            raise APIError(400, f"{where}: {param}.name must be a string, got {name!r}",
                           param=f"{param}.name")  # fmt: skip
        out.append({"role": role, "content": content, **({"name": name} if name else {})})
    return out


def _content(where: str, content, role: str, param: str) -> str:
    """A message's content as text: a string, or a list of ``{"type": "text", "text": ...}``."""
    if isinstance(content, str):
        return content
    if content is None and role == "assistant":
        return ""
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return "".join(p["text"] for p in content)
    raise APIError(400, f"{where}: {param}.content must be a string or a list of text parts, got "
                   f"{_short(content)}", param=f"{param}.content")  # fmt: skip


def _short(value, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


# --- responses ----------------------------------------------------------------------------------
def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    """The token counts of a response."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip


def completion_response(id: str, created: int, model: str, choices: list, use: dict) -> dict:
    """``POST /v1/completions``' answer; ``choices`` holds ``(index, text, finish_reason)``."""
    return {"id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": i, "text": text, "logprobs": None, "finish_reason": reason}
                        for i, text, reason in choices], "usage": use}  # fmt: skip


def chat_response(id: str, created: int, model: str, choices: list, use: dict) -> dict:
    """``POST /v1/chat/completions``' answer; ``choices`` holds ``(index, text, finish_reason)``."""
    return {"id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": i, "message": {"role": "assistant", "content": text},
                         "logprobs": None, "finish_reason": reason}
                        for i, text, reason in choices], "usage": use}  # fmt: skip


def completion_chunk(id, created, model, index, text, finish_reason=None) -> dict:
    """One streamed piece of a completion."""
    return {"id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": index, "text": text, "logprobs": None,
                         "finish_reason": finish_reason}]}  # fmt: skip


def chat_chunk(id, created, model, index, delta: dict, finish_reason=None) -> dict:
    """One streamed piece of a chat reply: ``delta`` is ``{"role": "assistant"}`` first, then
    ``{"content": text}``, and ``{}`` with the ``finish_reason`` at the end."""
    return {"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": index, "delta": delta, "logprobs": None,
                         "finish_reason": finish_reason}]}  # fmt: skip


def sse(data: dict) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line (UTF-8, characters unescaped)."""
    return b"data: " + json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n\n"
