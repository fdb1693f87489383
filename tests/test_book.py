"""The book and the code point at each other, and the book builds offline with no warnings."""

import ast
import functools
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.md"))
# the diagrams drawn at build time (book/_ext/minroots_diagrams.py) and the chapter showing each
DIAGRAMS = {
    "computation_graph": "02_autograd",
    "transformer_block": "03_attention",
    "attention_mask": "03_attention",
    "bpe_merges": "06_tokenizers",
    "kv_cache": "09_generation",
}


def _module_docstrings():
    for path in sorted((REPO / "minroots").rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text("utf-8"))) or ""
        yield path.relative_to(REPO), doc


def test_there_is_one_chapter_per_notebook_number():
    numbers = [p.name[:2] for p in CHAPTERS]
    assert len(numbers) >= 12 and numbers == [f"{i:02d}" for i in range(len(numbers))], numbers


def test_every_module_docstring_names_an_existing_chapter():
    for path, doc in _module_docstrings():
        refs = re.findall(r"book/[\w.-]+\.md", doc)
        assert refs, f"{path}: the module docstring names no book chapter (book/NN_name.md)"
        for ref in refs:
            assert (REPO / ref).is_file(), f"{path}: names {ref}, which does not exist"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_names_its_source_files_and_tests(chapter):
    text = chapter.read_text("utf-8")
    sources = set(re.findall(r"minroots/[\w/]+\.py", text))
    tests = set(re.findall(r"tests/[\w/]+\.py", text))
    assert sources, f"{chapter.name} names no source file under minroots/"
    assert tests, f"{chapter.name} names no test file under tests/"
    for ref in sorted(sources | tests):
        assert (REPO / ref).is_file(), f"{chapter.name} names {ref}, which does not exist"


# --- exercises: one list per chapter, shared by the book and the notebook, with solutions ---------
EXERCISES = BOOK / "exercises"
SOLUTIONS = BOOK / "solutions"
_ITEM = re.compile(r"^(\d+)\. (★{1,3}) \*\*(.+?)\*\*", re.M)
LEVELS = {"★", "★★", "★★★"}


def _notebook(chapter: Path) -> Path:
    return REPO / "tutorials" / f"{chapter.stem}.ipynb"


def _exercises(chapter: Path) -> list[tuple[int, str, str]]:
    """``(number, level, text)`` of each exercise in ``book/exercises/<chapter>.md``."""
    text = (EXERCISES / chapter.name).read_text("utf-8")
    starts = list(_ITEM.finditer(text))
    return [(int(m.group(1)), m.group(2), text[m.start() : (starts[k + 1].start() if k + 1 < len(starts) else len(text))])
            for k, m in enumerate(starts)]  # fmt: skip


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_every_exercise_has_a_level_and_a_hint(chapter):
    items = _exercises(chapter)
    assert len(items) >= 3, f"{chapter.name}: fewer than 3 exercises"
    assert [n for n, _, _ in items] == list(range(1, len(items) + 1)), "numbered 1, 2, 3, ..."
    for n, level, text in items:
        assert level in LEVELS, f"{chapter.name} exercise {n}: level {level!r}"
        assert "*Hint:*" in text, f"{chapter.name} exercise {n} has no *Hint:*"
        for task in re.findall(r"--only ([0-9]+\.[0-9]+)", text):
            from minroots.assignments import load_tasks

            assert task in load_tasks(), f"{chapter.name} exercise {n}: no task {task}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_book_and_notebook_share_one_exercise_list(chapter):
    shared = (EXERCISES / chapter.name).read_text("utf-8").strip()
    assert f"```{{include}} exercises/{chapter.name}\n```" in chapter.read_text("utf-8"), (
        f"{chapter.name}: its Exercises section must include exercises/{chapter.name}"
    )
    cells = json.loads(_notebook(chapter).read_text("utf-8"))["cells"]
    sources = ["".join(c["source"]).strip() for c in cells if c["cell_type"] == "markdown"]
    assert f"## Exercises\n\n{shared}" in sources, (
        f"{_notebook(chapter).name}: needs a markdown cell '## Exercises' followed by the text of "
        f"book/exercises/{chapter.name}"
    )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_every_exercise_has_a_worked_solution(chapter):
    notebook = SOLUTIONS / f"{chapter.stem}.ipynb"
    assert notebook.is_file(), f"no {notebook.relative_to(REPO)}"
    cells = json.loads(notebook.read_text("utf-8"))["cells"]
    headings = [int(m.group(1)) for c in cells if c["cell_type"] == "markdown"
                for m in [re.match(r"## Exercise (\d+)\b", "".join(c["source"]))] if m]  # fmt: skip
    assert headings == [n for n, _, _ in _exercises(chapter)], (
        f"{notebook.name}: one '## Exercise N' cell per exercise, in order"
    )
    assert any(c["cell_type"] == "code" and "assert" in "".join(c["source"]) for c in cells), (
        f"{notebook.name}: the solutions check their answers with assert"
    )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_test_links_in_the_book_name_test_functions_that_exist(chapter):
    text = chapter.read_text("utf-8")
    links = re.findall(r"tests/([\w/]+\.py)::(\w+)", text)
    assert links, f"{chapter.name} links no test function (tests/file.py::test_name)"
    for path, name in links:
        source = (REPO / "tests" / path).read_text("utf-8")
        assert re.search(rf"^(?:async )?def {name}\(", source, re.M), (
            f"{chapter.name}: {path}::{name}"
        )


def test_the_diagrams_are_drawn(tmp_path):
    sys.path.insert(0, str(BOOK / "_ext"))
    try:
        import minroots_diagrams
    finally:
        sys.path.remove(str(BOOK / "_ext"))
    paths = minroots_diagrams.draw_all(tmp_path)
    assert sorted(p.stem for p in paths) == sorted(DIAGRAMS)
    for path in paths:
        assert path.read_text("utf-8").lstrip().startswith("<?xml") and "<svg" in path.read_text()


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """``(result, html folder)`` of ``jupyter-book build`` (slow: it runs every notebook)."""
    beside_python = Path(sys.executable).parent / "jupyter-book"
    exe = str(beside_python) if beside_python.exists() else shutil.which("jupyter-book")
    if exe is None:
        pytest.skip("jupyter-book is not installed (dev extra)")
    out = tmp_path_factory.mktemp("book")
    # MPLBACKEND=Agg (as CI sets it) would reach the notebook kernels and keep plt.show() from
    # putting any figure in the book; a reader's build has the kernel's inline backend
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    result = subprocess.run(
        [exe, "build", "-W", "-n", "--keep-going", str(BOOK), "--path-output", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    return result, out / "_build" / "html"


@pytest.mark.slow
def test_book_builds_offline_without_warnings(built_book):
    result, html = built_book
    output = (result.stdout + result.stderr).splitlines()  # Sphinx warns on stderr
    warnings = [line for line in output if ("WARNING" in line or "ERROR" in line)
                and not line.startswith("[IPKernelApp]")]  # fmt: skip
    assert result.returncode == 0, (
        "\n".join(warnings) or result.stdout[-3000:] + result.stderr[-3000:]
    )
    assert (html / "index.html").exists()
    for chapter in CHAPTERS:  # the executed notebooks' figures are in the book
        page = (html / "notebooks" / f"{chapter.stem}.html").read_text("utf-8")
        assert "<img" in page, f"the book's page of notebook {chapter.stem} shows no figure"
    for name, chapter in DIAGRAMS.items():  # and each chapter's diagrams
        page = (html / f"{chapter}.html").read_text("utf-8")
        assert f"{name}.svg" in page and "<img" in page, f"{chapter}.html lacks diagram {name}"


# --- formulas offline: MathJax served with the book (book/_ext/minroots_mathjax.py) -------------
# a script, stylesheet, image or frame fetched from another host when a page is opened
_FETCHED = re.compile(
    r"<(?:script|img|iframe)\b[^>]*\bsrc=[\"'](?:https?:)?//|<link\b[^>]*\bhref=[\"'](?:https?:)?//",
    re.I,
)


def _mathjax_extension():
    pytest.importorskip("sphinx")
    if importlib.util.find_spec("sphinx-mathjax-offline") is None:
        pytest.skip("sphinx-mathjax-offline is not installed (dev extra)")
    sys.path.insert(0, str(BOOK / "_ext"))
    try:
        import minroots_mathjax
    finally:
        sys.path.remove(str(BOOK / "_ext"))
    return minroots_mathjax


def test_mathjax_is_served_with_the_book(tmp_path):
    """Fast: the book's configuration loads the extension, and a one-page Sphinx project with it
    loads MathJax from its own _static folder, which holds the files MathJax asks for."""
    ext = _mathjax_extension()
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((BOOK / "_config.yml").read_text("utf-8"))
    assert config["sphinx"]["local_extensions"]["minroots_mathjax"] == "_ext"
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(BOOK / '_ext')!r})\n"
        "extensions = ['minroots_mathjax']\n",
        encoding="utf-8",
    )
    (src / "index.rst").write_text("Loss\n====\n\n:math:`\\hat y = \\mathrm{softmax}(z)`\n")
    result = subprocess.run([sys.executable, "-m", "sphinx", "-q", "-W", "-b", "html", str(src),
                             str(tmp_path / "html")], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    page = (tmp_path / "html" / "index.html").read_text("utf-8")
    assert f'src="_static/{ext.MATHJAX_PATH}"' in page and not _FETCHED.search(page)
    from sphinx.ext.mathjax import MATHJAX_URL  # what Sphinx would load without the extension

    assert _FETCHED.search(f'<script defer="defer" src="{MATHJAX_URL}"></script>')
    mathjax = tmp_path / "html" / "_static" / "mathjax"
    assert (mathjax / "tex-chtml.js").stat().st_size > 500_000  # MathJax 3: TeX in, HTML out
    for needed in ("output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
                   "input/tex/extensions/boldsymbol.js", "ui/menu.js"):  # fmt: skip
        assert (mathjax / needed).is_file(), needed
    assert not (mathjax / "tex-svg.js").exists() and not (mathjax / "output" / "svg").exists()


@pytest.mark.slow
def test_no_page_of_the_book_loads_anything_from_the_network(built_book):
    _, html = built_book
    pages = sorted(html.rglob("*.html"))
    assert len(pages) > 2 * len(CHAPTERS)
    for page in pages:
        found = _FETCHED.search(page.read_text("utf-8"))
        assert not found, f"{page.relative_to(html)} fetches {found.group()!r}"
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()


def _headless_chromium():
    """A Selenium driver for Debian's headless Chromium with no network, or a skip."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("Chromium and chromedriver are not installed (apt-get install chromium "
                    "chromium-driver)")  # fmt: skip
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1600",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--proxy-server=127.0.0.1:9"):  # fmt: skip
        options.add_argument(arg)  # the last two: no host but this one resolves, nothing leaves
    return webdriver.Chrome(options=options, service=Service(driver))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no line per request on stderr
        pass


@pytest.mark.slow
def test_formulas_render_offline_in_a_headless_browser(built_book, tmp_path):
    """Chapter 4 in Chromium with the network cut off, served from this machine (127.0.0.1):
    MathJax typesets every formula, every file the page loaded came from the book's own folder,
    and the screenshot (``tmp_path/04_cross_entropy.png``) shows it."""
    _, html = built_book
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(html))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    here = f"http://127.0.0.1:{server.server_address[1]}/"
    browser = _headless_chromium()
    try:
        browser.set_script_timeout(120)
        browser.get(here + "04_cross_entropy.html")
        typeset = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const wait = () => window.MathJax && MathJax.startup && MathJax.startup.promise"
            "  ? MathJax.startup.promise.then(() => done("
            "      document.querySelectorAll('mjx-container').length), e => done(String(e)))"
            "  : setTimeout(wait, 100);"
            "wait();"
        )
        fetched = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        text = browser.find_element("tag name", "body").text
        shot = tmp_path / "04_cross_entropy.png"
        browser.save_screenshot(str(shot))
    finally:
        browser.quit()
        server.shutdown()
        server.server_close()
    assert isinstance(typeset, int) and typeset > 50, typeset  # chapter 4 has over 100 formulas
    assert "\\(" not in text and "\\mathrm" not in text  # no formula left as raw TeX
    assert any("mathjax/tex-chtml.js" in url for url in fetched), fetched
    assert all(url.startswith(here) for url in fetched), fetched
    image = pytest.importorskip("matplotlib.image").imread(shot)
    assert image.shape[1] == 1200 and image.shape[0] > 1000 and image.std() > 0.05  # not blank
