"""The chat page of ``minroots serve`` in a real headless browser (Debian's Chromium driven by
Selenium): load it, send two messages, see each reply streamed in pieces, the conversation kept,
the tokens/s shown, and a screenshot (book chapter 14). Skips when Chromium or its driver is
missing; CI installs both (``.ci/run``)."""

import os
import shutil
import time

import numpy as np
import pytest

from minroots.generation import generate
from minroots.serve.chat_format import PlainChatFormat
from minroots.training.checkpoint import load_model
from tests.serve_helpers import ServerProcess, save_checkpoint

webdriver = pytest.importorskip("selenium.webdriver")
pytest.importorskip("starlette")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromium-driver")  # fmt: skip
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1000,800"]  # fmt: skip


@pytest.fixture
def browser(tmp_path):
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(predicate, timeout=60.0, what="the page"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _greedy_reply(model, tok, messages, max_tokens):
    """What the server must answer with temperature 0: the plain chat format, stopped at the
    first blank line or after ``max_tokens`` tokens."""
    ids = PlainChatFormat(tok).prompt_ids(messages)
    text = tok.decode(
        generate(model, np.array(ids), max_tokens, temperature=0)[len(ids) :].tolist()
    )
    return text.split("\n\n")[0]


def test_the_chat_page_streams_replies_and_keeps_the_conversation(browser, tmp_path):
    from selenium.webdriver.common.by import By

    # untied output weights: an untrained tied model's greedy reply is its last token, "\n", again
    tok = save_checkpoint(tmp_path / "ckpt", block_size=128, n_embd=32, tie_weights=False)
    model = load_model(tmp_path / "ckpt")
    server = ServerProcess(tmp_path / "ckpt", log=tmp_path / "server.log")
    try:
        browser.get(server.url + "/")
        info = browser.find_element(By.ID, "model-info")
        _wait(lambda: "context 128 tokens" in info.text, what="the model's name and context")
        browser.execute_script("const t = document.getElementById('temperature');"
                               "t.value = '0'; t.dispatchEvent(new Event('input'));")  # fmt: skip
        max_tokens = browser.find_element(By.ID, "max-tokens")
        max_tokens.clear()
        max_tokens.send_keys("25")
        messages = []
        for text in ["Good morrow!", "What say you?"]:
            browser.find_element(By.ID, "prompt").send_keys(text)
            browser.find_element(By.ID, "send").click()
            messages.append({"role": "user", "content": text})
            _wait(lambda: browser.execute_script("return window.chat.usage !== null"),
                  what="the reply to end")  # fmt: skip
            reply = browser.find_elements(By.CSS_SELECTOR, ".message.assistant .text")[-1].text
            assert reply == _greedy_reply(model, tok, messages, 25).strip()
            messages.append({"role": "assistant", "content": reply})
            assert browser.execute_script("return window.chat.pieces") > 1  # streamed, not whole
            assert browser.execute_script("return window.chat.messages.length") == len(messages)
            browser.execute_script("window.chat.usage = null")
        assert "tokens/s" in browser.find_element(By.ID, "stats").text
        shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".message.user .text")]
        assert shown == ["Good morrow!", "What say you?"]
        shot = tmp_path / "chat.png"
        assert browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
    finally:
        server.stop()
