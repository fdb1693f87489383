"""The bundled corpora (data/, installed as minroots.corpora) and load_corpus / load_pairs."""

import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from minroots.data import corpus_path, list_corpora, load_corpus, load_pairs
from minroots.data.corpus import DEFAULT_CORPUS


def _readme_rows() -> dict[str, tuple[int, int, str]]:
    """``{file: (bytes, lines, sha256)}`` from the table in data/README.md."""
    readme = (resources.files("minroots.corpora") / "README.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| `([^`]+)` \| [^|]+ \| (\d+) \| (\d+) \| `([0-9a-f]{64})` \|$", readme, re.M
    )
    return {name: (int(size), int(lines), sha) for name, size, lines, sha in rows}


# --- the shipped files -----------------------------------------------------------------------


def test_bundled_corpora_found_through_importlib_resources():
    root = resources.files("minroots.corpora")
    assert (root / "shakespeare.txt").is_file()
    assert DEFAULT_CORPUS == "shakespeare"
    assert set(list_corpora()) == {"shakespeare", "en_es", "debian_summaries", "dialogue_en",
                                   "tang300", "song100", "en_zh"}  # fmt: skip
    assert list_corpora("text") == ["shakespeare", "song100", "tang300"]
    assert list_corpora("pairs") == ["debian_summaries", "dialogue_en", "en_es", "en_zh"]
    assert load_corpus("shakespeare") == (root / "shakespeare.txt").read_text(encoding="utf-8")


def test_readme_checksums_sizes_and_line_counts_match_the_files():
    rows = _readme_rows()
    root = resources.files("minroots.corpora")
    shipped = sorted(e.name for e in root.iterdir() if e.name.endswith((".txt", ".tsv", ".jsonl")))
    assert sorted(rows) == shipped, "every shipped corpus needs exactly one row in data/README.md"
    for name, (size, lines, sha) in rows.items():
        data = (root / name).read_bytes()
        assert len(data) == size, f"{name}: README says {size} bytes, file has {len(data)}"
        assert data.count(b"\n") == lines, f"{name}: line count differs from README"
        assert hashlib.sha256(data).hexdigest() == sha, f"{name}: sha256 differs from README"
    assert sum(s for s, _, _ in rows.values()) < 4 * 2**20  # a few MB in all


def test_shakespeare_is_about_1mb_of_clean_plays():
    text = load_corpus()
    assert 900_000 < len(text) < 1_200_000
    assert text.startswith("HAMLET, PRINCE OF DENMARK")
    assert "gutenberg" not in text.lower() and "\r" not in text
    assert "\n\n\n" not in text and not re.search(r"[ \t]$", text, re.M)
    for play in ("MACBETH", "OTHELLO", "THE TEMPEST"):
        assert play in text
    assert text.isascii()


def test_pair_corpora_are_well_formed():
    en_es = load_pairs("en_es")
    assert len(en_es) == 5000
    assert en_es[0] == (
        "In the beginning, God created the heavens and the earth.",
        "EN el principio crió Dios los cielos y la tierra.",
    )
    assert all(10 <= len(a) < 100 and 10 <= len(b) < 100 for a, b in en_es)
    assert not any("<" in a + b or "  " in a + b for a, b in en_es)  # no markup left
    assert len(set(en_es)) == len(en_es)  # no repeated pair to leak from train into validation
    for name, n in (("debian_summaries", 1000), ("dialogue_en", 1210)):
        pairs = load_pairs(name)
        assert len(pairs) == n and all(a.strip() and b.strip() for a, b in pairs)
    summaries = [json.loads(line) for line in corpus_path("debian_summaries")[1].open()]
    assert all(r["package"] and len(r["target"]) < len(r["source"]) for r in summaries)


# --- load_corpus / load_pairs on user files and errors ---------------------------------------


def test_load_corpus_from_a_path(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_bytes("héllo\r\nworld\n".encode())
    assert load_corpus(p) == "héllo\nworld\n"  # UTF-8, line ends normalised
    assert load_corpus(str(p)) == "héllo\nworld\n"


def test_missing_corpus_error_names_what_is_available(tmp_path):
    with pytest.raises(FileNotFoundError, match="shakespeare") as e:
        load_corpus("shakspeare")
    assert "name_or_path" in str(e.value) and "en_es" in str(e.value)
    with pytest.raises(FileNotFoundError, match="bundled text corpora"):
        load_corpus(tmp_path / "nope.txt")


def test_empty_and_invalid_corpora_raise_clear_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n")
    with pytest.raises(ValueError, match="empty"):
        load_corpus(empty)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8"):
        load_corpus(bad)
    with pytest.raises(ValueError, match="load_pairs"):
        load_corpus("en_es")
    with pytest.raises(TypeError, match="name_or_path"):
        load_corpus(3)


def test_load_pairs_tsv_and_jsonl_hand_examples(tmp_path):
    tsv = tmp_path / "p.tsv"
    tsv.write_text("en\tes\nGood morning.\tBuenos días.\n\nThanks.\tGracias.\n", encoding="utf-8")
    assert load_pairs(tsv) == [("Good morning.", "Buenos días."), ("Thanks.", "Gracias.")]
    jl = tmp_path / "p.jsonl"
    jl.write_text('{"source": "a b", "target": "b", "x": 1}\n{"source": "c", "target": "d"}\n')
    assert load_pairs(jl) == [("a b", "b"), ("c", "d")]


def test_load_pairs_malformed_lines_name_the_line(tmp_path):
    tsv = tmp_path / "p.tsv"
    tsv.write_text("en\tes\nok\tbien\nno tab here\n")
    with pytest.raises(ValueError, match="line 3"):
        load_pairs(tsv)
    jl = tmp_path / "p.jsonl"
    jl.write_text('{"source": "a", "target": "b"}\n{"source": "a"}\n')
    with pytest.raises(ValueError, match="line 2"):
        load_pairs(jl)
    txt = tmp_path / "p.txt"
    txt.write_text("text")
    with pytest.raises(ValueError, match="not a pair corpus"):
        load_pairs(txt)
    header_only = tmp_path / "h.tsv"
    header_only.write_text("en\tes\n")
    with pytest.raises(ValueError, match="no pairs"):
        load_pairs(header_only)


# --- the prepare scripts' cleaning steps -----------------------------------------------------


def test_prepare_shakespeare_strips_gutenberg_boilerplate():
    from minroots.corpora.prepare_shakespeare import clean_play

    raw = (
        "Header\r\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\r\nACT I.  \r\n\r\n\r\n\r\n"
        "Ho!\r\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\r\nlicence"
    )
    assert clean_play(raw) == "ACT I.\n\nHo!\n"
    assert clean_play("A\n\n\n\nB  \n") == "A\n\nB\n"


def test_prepare_translation_cleans_osis_markup():
    from minroots.corpora.prepare_translation import clean_verse

    osis = (
        '<div sID="a" type="x-p"/><w lemma="strong:G2424">Jesus</w> <w>wept</w>. '
        '<note placement="foot"><reference>11:35</reference>A note.</note><div eID="a"/>'
    )
    assert clean_verse(osis) == "Jesus wept."
    assert clean_verse('<q who="J">“<w>Let</w> <w>there</w>,”</q> <w>and</w>') == "“Let there,” and"
    title = '<title canonical="true" type="psalm">A Poem.</title> <w>Hi</w>'
    assert clean_verse(title) == "A Poem. Hi"
    assert clean_verse('<title type="main">Heading</title><w>Hi</w>') == "Hi"


def test_prepare_summaries_and_dialogue_helpers():
    from minroots.corpora.prepare_dialogue import conversation_pairs
    from minroots.corpora.prepare_summaries import _document, parse_translation_index

    index = "Package: a\nDescription-md5: x\nDescription-en: Tool\n Does x.\n .\n Also y.\n"
    recs = parse_translation_index(index)
    assert recs == [{"package": "a", "summary": "Tool", "lines": ["Does x.", ".", "Also y."]}]
    assert _document(recs[0]["lines"]) == "Does x.\n\nAlso y."
    assert _document(["Intro:", "  * a list item"]) is None  # verbatim lines are skipped
    assert conversation_pairs(["Hello", "Hi", 42]) == [("Hello", "Hi"), ("Hi", "42")]


# --- the wheel carries the data --------------------------------------------------------------


def test_wheel_includes_the_corpora(tmp_path):
    pytest.importorskip("setuptools")
    repo = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(repo / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(repo / "minroots", src / "minroots", ignore=ignore)
    shutil.copytree(repo / "data", src / "data", ignore=ignore)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    result = subprocess.run([*cmd, str(src), "-w", str(tmp_path / "dist")], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"could not build a wheel offline: {result.stderr.decode()[-300:]}")
    (wheel,) = (tmp_path / "dist").glob("minroots-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("shakespeare.txt", "en_es.tsv", "debian_summaries.jsonl", "README.md",
              "tang300.txt", "COPYING.poems"):  # fmt: skip
        assert f"minroots/corpora/{f}" in names
    assert "minroots/data/corpus.py" in names
