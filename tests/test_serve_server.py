"""``minroots serve`` as a real subprocess on 127.0.0.1, called with the ``openai`` client and raw
HTTP: completions, chat, streaming, every error status, the API key, batched = alone, and a
client that disconnects freeing its slot (book chapter 14)."""

import http.client
import json
import socket
import threading
import time

import numpy as np
import pytest

from minroots.chat.template import ChatTemplate
from minroots.generation import generate
from minroots.posttrain.finetune import finetune
from minroots.posttrain.finetune_config import FinetuneSettings
from minroots.serve.chat_format import PlainChatFormat
from minroots.training import TrainerConfig
from minroots.training.checkpoint import latest_checkpoint, load_model
from minroots.training.integrity import write_manifest
from tests.posttrain_fixtures import conversation_file
from tests.serve_helpers import ServerProcess, save_checkpoint

openai = pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

KEY = "sk-minroots-test"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A character-level model (context 32) behind a key, 4 slots, 4 more waiting."""
    folder = tmp_path_factory.mktemp("tiny")
    tok = save_checkpoint(folder / "ckpt")
    server = ServerProcess(folder / "ckpt", "--api-key", KEY, "--max-batch", "4", "--max-queue",
                           "4", "--max-tokens", "64", "--max-body", "4096", "--model-name",
                           "tiny", log=folder / "server.log")  # fmt: skip
    server.tokenizer, server.model = tok, load_model(folder / "ckpt")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    """A slower byte-level model with one slot and no queue: the second request is refused."""
    folder = tmp_path_factory.mktemp("busy")
    tok = save_checkpoint(folder / "ckpt", bpe=True, block_size=64, n_layer=2, n_embd=128)
    server = ServerProcess(folder / "ckpt", "--max-batch", "1", "--max-queue", "0",
                           "--max-tokens", "2000", log=folder / "server.log")  # fmt: skip
    server.tokenizer = tok
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    """A chat model made by chapter 10's fine-tuning path (``finetune``: the markers added to the
    tokenizer, the embedding resized, ``chat_template.json`` saved with the checkpoint), edited so
    that it answers with the end marker at once, and served without a key."""
    folder = tmp_path_factory.mktemp("chat")
    save_checkpoint(folder / "base", block_size=64)
    data = conversation_file(folder / "chats.jsonl")
    train = TrainerConfig(max_steps=2, batch_size=4, lr=1e-3, warmup=1, eval_interval=0,
                          log_interval=0, out_dir=str(folder / "ft"), seed=0)  # fmt: skip
    finetune(folder / "base", FinetuneSettings(data=str(data), val_fraction=0.25), train,
             log=lambda line: None)  # fmt: skip
    checkpoint = latest_checkpoint(folder / "ft")
    template = ChatTemplate.load(folder / "ft")
    # Every final state becomes the vector of ones (layer-norm gain 0, bias 1) and the end
    # marker's output row is all 4: its logit, 4 * n_embd = 128, dwarfs every other one.
    model = load_model(checkpoint)
    model.ln_f.weight.data[...] = 0.0
    model.ln_f.bias.data[...] = 1.0
    model.lm_head.weight.data[template.end_id] = 4.0
    model.save(checkpoint)
    write_manifest(checkpoint)  # the checksums of the edited weights
    server = ServerProcess(folder / "ft", "--max-tokens", "16", "--model-name", "chat",
                           log=folder / "server.log")  # fmt: skip
    server.template = template
    yield server
    server.stop()


def _client(server, key=KEY):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=60)


def _events(response) -> list:
    """The ``data:`` payloads of a server-sent event stream (http.client response)."""
    payloads = []
    for block in response.read().decode("utf-8").split("\n\n"):
        if block:
            assert block.startswith("data: "), block
            payloads.append(block[len("data: ") :])
    return payloads


def _raw_stream(server, path, body, key=KEY):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", path, json.dumps(body), {"Authorization": f"Bearer {key}",
                                                  "Content-Type": "application/json"})  # fmt: skip
    return conn, conn.getresponse()


# --- what works ---------------------------------------------------------------------------------
def test_models_and_health(tiny):
    assert [m.id for m in _client(tiny).models.list().data] == ["tiny"]
    health = tiny.get("/health")  # no key needed
    assert health["status"] == "ok" and health["context_length"] == 32
    assert health["chat_format"] == "plain" and health["max_batch"] == 4


def test_chat_completion_streamed_and_not_agree(tiny):
    client = _client(tiny)
    messages = [{"role": "user", "content": "Good morrow!"}]
    kwargs = dict(model="tiny", messages=messages, max_tokens=20, temperature=0.8, seed=3)
    reply = client.chat.completions.create(**kwargs)
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    prompt = PlainChatFormat(tiny.tokenizer).prompt_ids(messages)
    assert reply.usage.prompt_tokens == len(prompt) and 1 <= reply.usage.completion_tokens <= 20
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens

    chunks = list(client.chat.completions.create(**kwargs, stream=True,
                                                 stream_options={"include_usage": True}))  # fmt: skip
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == choice.finish_reason
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens

    conn, response = _raw_stream(tiny, "/v1/chat/completions", {**kwargs, "stream": True})
    assert response.status == 200 and response.getheader("content-type").startswith(
        "text/event-stream"
    )
    payloads = _events(response)
    conn.close()
    assert payloads[-1] == "[DONE]" and all(json.loads(p)["object"] == "chat.completion.chunk"
                                            for p in payloads[:-1])  # fmt: skip


def test_completion_equals_the_library_greedy_past_the_context(tiny):
    ids = tiny.tokenizer.encode("ROMEO:")
    expected = generate(tiny.model, np.array(ids), 40, temperature=0)[len(ids) :]
    reply = _client(tiny).completions.create(model="tiny", prompt="ROMEO:", max_tokens=40,
                                             temperature=0)  # fmt: skip
    assert reply.choices[0].text == tiny.tokenizer.decode(expected.tolist())
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 40


TOP_K = {"top_k": 20}  # an extension: the openai client sends it as an extra field


def test_batched_output_equals_alone(tiny):
    client = _client(tiny)
    prompts = ["ROMEO:", "JULIET:\nO", "First Citizen:\nWe are"]

    def alone(prompt, seed):
        reply = client.completions.create(model="tiny", prompt=prompt, max_tokens=24,
                                          temperature=1.0, seed=seed, extra_body=TOP_K)  # fmt: skip
        return reply.choices[0].text

    solo = [alone(p, 5) for p in prompts]
    together = client.completions.create(model="tiny", prompt=prompts, max_tokens=24,
                                         temperature=1.0, seed=5, extra_body=TOP_K)  # fmt: skip
    assert [c.text for c in sorted(together.choices, key=lambda c: c.index)] == solo
    n = client.completions.create(model="tiny", prompt=prompts[0], max_tokens=24,
                                  temperature=1.0, seed=9, n=3, extra_body=TOP_K)  # fmt: skip
    assert [c.text for c in sorted(n.choices, key=lambda c: c.index)] == [
        alone(prompts[0], s) for s in (9, 10, 11)
    ]
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, alone(prompts[i], 5)))
               for i in range(3)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(3)] == solo
    assert tiny.get("/health")["peak_batch"] >= 3  # the list and n were decoded together


def test_streamed_bytes_are_never_half_a_character(busy):
    client = _client(busy, key="unused")
    kwargs = dict(
        model=busy.get("/health")["model"], prompt="é", max_tokens=60, temperature=1.5, seed=0
    )
    whole = client.completions.create(**kwargs).choices[0].text
    pieces = [
        c.choices[0].text for c in client.completions.create(**kwargs, stream=True) if c.choices
    ]
    assert "".join(pieces) == whole
    texts = [p for p in pieces if p]
    assert all(not p.endswith("\ufffd") for p in texts[:-1])  # a split character waits


# --- errors -------------------------------------------------------------------------------------
def _check_error(status, body, expected, param=None):
    assert status == expected, body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    if param:
        assert body["error"]["param"] == param
    return body["error"]


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_the_api_key_is_required_and_checked(tiny):
    with pytest.raises(openai.AuthenticationError):
        _client(tiny, key="sk-wrong").models.list()
    status, body, _ = tiny.post("/v1/completions", {"prompt": "A"})
    assert "Authorization: Bearer" in _check_error(status, body, 401)["message"]
    status, _, _ = tiny.post("/v1/completions", {"prompt": "A", "max_tokens": 1}, AUTH)
    assert status == 200


def test_every_bad_request_gets_its_status(tiny):
    status, body, _ = tiny.post("/v1/completions", b"{not json", AUTH)
    _check_error(status, body, 400)
    status, body, _ = tiny.post("/v1/completions", {"prompt": "A", "max_tokens": "many"}, AUTH)
    _check_error(status, body, 400, "max_tokens")
    status, body, _ = tiny.post("/v1/chat/completions", {"messages": "hi"}, AUTH)
    _check_error(status, body, 400, "messages")
    status, body, _ = tiny.post("/v1/completions", {"prompt": ["A", "B", "C"], "n": 3}, AUTH)
    assert "holds at once (8)" in _check_error(status, body, 400, "n")["message"]  # never fits
    status, body, _ = tiny.post("/v1/completions", {"prompt": "A" * 33}, AUTH)
    error = _check_error(status, body, 400, "prompt")
    assert "32 tokens" in error["message"] and error["code"] == "context_length_exceeded"
    status, body, _ = tiny.post("/v1/completions", {"prompt": "A", "max_tokens": 65}, AUTH)
    assert "<= 64" in _check_error(status, body, 400, "max_tokens")["message"]
    status, body, _ = tiny.post(
        "/v1/completions", {"prompt": "\u4e2d"}, AUTH
    )  # not in the vocabulary
    assert "U+4E2D" in _check_error(status, body, 400, "prompt")["message"]
    with pytest.raises(openai.NotFoundError):
        _client(tiny).completions.create(model="gpt-4", prompt="A")
    status, body, _ = tiny.post("/v1/nothing", {}, AUTH)
    _check_error(status, body, 404)
    status, body, _ = tiny.post("/v1/completions", {"prompt": "A" * 5000}, AUTH)
    assert "4096 bytes" in _check_error(status, body, 413)["message"]


def test_a_full_server_refuses_and_a_disconnect_frees_the_slot_at_once(busy):
    body = {"prompt": "Hello", "max_tokens": 2000, "temperature": 1.0, "seed": 1, "stream": True}
    conn, response = _raw_stream(busy, "/v1/completions", body)
    assert response.status == 200
    first = response.readline()  # the first event: the request holds the only slot
    assert first.startswith(b"data: ")
    status, error, headers = busy.post("/v1/completions", {"prompt": "Hi", "max_tokens": 5})
    assert (
        _check_error(status, error, 429)["code"] == "queue_full" and headers["Retry-After"] == "1"
    )
    with pytest.raises(openai.RateLimitError):
        _client(busy, key="unused").completions.create(model="ckpt", prompt="Hi", max_tokens=5)
    conn.close()  # the client goes away mid-stream
    deadline = time.monotonic() + 10
    while busy.get("/health")["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    health = busy.get("/health")
    assert health["pending"] == 0 and health["running"] == 0
    assert health["tokens"] < 1000, "generation went on after the client left"
    status, reply, _ = busy.post("/v1/completions", {"prompt": "Hi", "max_tokens": 5})
    assert status == 200 and reply["usage"]["completion_tokens"] == 5


def test_the_limits_are_printed_at_start_up(tiny):
    log = tiny.log()
    assert "max-batch 4, max-queue 4, max-tokens 64, max-body 4096 bytes" in log
    assert "API key required" in log and "CORS off" in log and "127.0.0.1" in log


def test_a_client_that_leaves_before_a_whole_answer_frees_its_slot(busy):
    before = busy.get("/health")["tokens"]
    body = json.dumps({"prompt": "Hello", "max_tokens": 2000}).encode()
    with socket.create_connection(("127.0.0.1", busy.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
        deadline = time.monotonic() + 10
        while not busy.get("/health")["running"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert busy.get("/health")["running"] == 1
    deadline = time.monotonic() + 10
    while busy.get("/health")["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    health = busy.get("/health")
    assert health["pending"] == 0 and health["tokens"] - before < 1000


# --- a fine-tuned chat model (chapter 10) ---------------------------------------------------------
def test_chat_template_checkpoint_is_served_with_its_template(chat_model):
    health = chat_model.get("/health")
    assert health["chat_format"] == "template" and health["context_length"] == 64
    template = chat_model.template
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is rain?"}]  # fmt: skip
    prompt, _ = template.render(messages, add_generation_prompt=True)
    assert prompt[-1] == template.ids["assistant"]
    client = _client(chat_model, key="none")
    kwargs = dict(model="chat", messages=messages, max_tokens=16, temperature=0)
    reply = client.chat.completions.create(**kwargs)
    assert reply.usage.prompt_tokens == len(prompt)
    # the model's first token is the end marker: the reply stops there, empty, not at max_tokens
    assert reply.choices[0].finish_reason == "stop" and reply.choices[0].message.content == ""
    assert reply.usage.completion_tokens == 1
    chunks = list(client.chat.completions.create(**kwargs, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""

    # OpenAI's "developer" message is the template's system message; a speaker's name is not
    # rendered; a character the tokenizer lacks is the client's error, naming the messages
    renamed = [{**messages[0], "role": "developer"}, {**messages[1], "name": "Romeo"}]
    assert client.chat.completions.create(**{**kwargs, "messages": renamed}).usage.prompt_tokens \
        == len(prompt)  # fmt: skip
    status, body, _ = chat_model.post("/v1/chat/completions",
                                      {"messages": [{"role": "user", "content": "a < b"}]})  # fmt: skip
    error = _check_error(status, body, 400, "messages")
    assert "messages[0]" in error["message"] and "'<'" in error["message"]
