"""Serving a model: an OpenAI-compatible HTTP server with continuous batching, and its web page.

Book chapter 14, "Deployment" (``book/14_deployment.md``); tests in
``tests/test_serve_batching.py``, ``tests/test_serve_protocol.py``, ``tests/test_serve_server.py``
and ``tests/test_serve_browser.py``.

Read in this order:

- ``slots.py``: :class:`SlotCache`, a key/value cache row per sequence, sequences of any lengths;
- ``text.py``: :class:`TextStream`, token ids to text pieces (whole characters, stop strings);
- ``engine.py``: :class:`Engine`, continuous batching: one forward per step for every sequence;
- ``chat_format.py``: chat messages to a prompt (the checkpoint's chat template, or plain text);
- ``protocol.py``: the OpenAI API's requests, responses, stream chunks and errors;
- ``scheduler.py``: the engine in a thread of its own, the queue and its limits;
- ``app.py``: the HTTP routes (Starlette), the API key, the body limit, the web page
  (``static/index.html``).

Only the first three are needed to batch by hand; the HTTP part needs the ``serve`` extra
(``pip install "minroots[serve]"``).
"""

from minroots.serve.engine import Engine, Event, SamplingParams, Sequence
from minroots.serve.slots import SlotCache, SlotView
from minroots.serve.text import TextStream

__all__ = ["Engine", "Event", "SamplingParams", "Sequence", "SlotCache", "SlotView", "TextStream"]
