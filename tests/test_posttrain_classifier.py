"""Classification fine-tuning: pooling over real tokens, padding that changes nothing, gradients,
the dataset's counts, the naive-Bayes baseline by hand, the confusion matrix, and a classifier
that learns.

Book chapter 10 (``book/10_applications.md``); code in ``minroots/posttrain/classifier.py``,
``minroots/posttrain/bag_of_words.py``, ``minroots/posttrain/confusion.py`` and
``data/prepare_sections.py``.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from minroots.data import load_pairs
from minroots.nn import TransformerModel
from minroots.posttrain.bag_of_words import NaiveBayes, words
from minroots.posttrain.classifier import (
    PAD,
    ClassificationDataset,
    SequenceClassifier,
    predict,
)
from minroots.posttrain.confusion import accuracy, confusion_matrix, plot_confusion
from minroots.posttrain.section_classification import split_sections
from minroots.tokenizers import CharTokenizer
from minroots.training import Trainer

REPO = Path(__file__).resolve().parents[1]


def _model(vocab=20, block=12):
    return TransformerModel(vocab_size=vocab, block_size=block, n_layer=1, n_head=2, n_embd=16)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_padding_changes_nothing_and_pooling_reads_real_tokens(pooling):
    clf = SequenceClassifier(_model(), ["a", "b", "c"], pooling=pooling)
    ids = np.array([3, 5, 7, 2])
    padded = np.full((1, 12), PAD)
    padded[0, :4] = ids
    alone = clf(ids[None])[0].data
    np.testing.assert_allclose(clf(padded)[0].data, alone, rtol=1e-5, atol=1e-6)
    h = clf.model.hidden_states(ids[None]).data[0]  # (4, C)
    expected = h[-1] if pooling == "last" else h.mean(axis=0)
    np.testing.assert_allclose(clf.features(padded).data[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling,lm_weight", [("last", 0.0), ("mean", 0.0), ("mean", 0.5)])
def test_gradients_reach_the_head_and_the_model_and_match_differences(pooling, lm_weight):
    model = _model()
    model.to(dtype=np.float64)
    clf = SequenceClassifier(model, ["a", "b"], pooling=pooling, lm_weight=lm_weight)
    clf.head.to(dtype=np.float64)
    x = np.array([[1, 2, 3, PAD, PAD], [4, 5, 6, 7, 8]])
    y = np.array([0, 1])
    _, loss = clf(x, y)
    loss.backward()
    w = clf.model.h[0].mlp.c_fc.weight
    assert clf.head.weight.grad is not None and w.grad is not None
    # a central difference on a few weights of the first block
    for index in [(0, 0), (3, 5), (10, 2)]:
        old = w.data[index]
        w.data[index] = old + 1e-6
        plus = float(clf(x, y)[1].data)
        w.data[index] = old - 1e-6
        minus = float(clf(x, y)[1].data)
        w.data[index] = old
        assert w.grad[index] == pytest.approx((plus - minus) / 2e-6, rel=1e-5, abs=1e-9)


def test_auxiliary_lm_loss_is_the_models_own_loss_over_real_next_tokens():
    model = _model()
    model.to(dtype=np.float64)
    plain = SequenceClassifier(model, ["a", "b"])
    plain.head.to(dtype=np.float64)
    aux = SequenceClassifier(model, ["a", "b"], lm_weight=0.5)
    aux.head = plain.head
    x = np.array([[1, 2, 3, PAD, PAD], [4, 5, 6, 7, 8]])
    y = np.array([0, 1])
    # each row alone, unpadded: 2 and 4 next-token predictions, averaged over all 6
    short = float(model(np.array([[1, 2]]), np.array([[2, 3]]))[1].data)
    full = float(model(np.array([[4, 5, 6, 7]]), np.array([[5, 6, 7, 8]]))[1].data)
    expected = float(plain(x, y)[1].data) + 0.5 * (2 * short + 4 * full) / 6
    assert float(aux(x, y)[1].data) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_array_equal(aux(x)[0].data, plain(x)[0].data)  # same logits
    with pytest.raises(ValueError, match="lm_weight must be"):
        SequenceClassifier(model, ["a", "b"], lm_weight=-1)


def test_validation_split_is_carved_from_the_training_packages():
    train, test = split_sections()
    fit, val = split_sections(validation=True)
    names = lambda records: {r["package"] for r in records}  # noqa: E731
    assert names(fit) | names(val) == names(train) and not names(fit) & names(val)
    assert not (names(fit) | names(val)) & names(test)
    assert 250 < len(val) < 350 and 250 < len(test) < 350  # about a fifth each


def test_bad_classifier_inputs_are_clear():
    with pytest.raises(ValueError, match="labels must be 2 or more distinct"):
        SequenceClassifier(_model(), ["a"])
    with pytest.raises(ValueError, match="pooling must be one of 'last', 'mean'"):
        SequenceClassifier(_model(), ["a", "b"], pooling="max")
    clf = SequenceClassifier(_model(), ["a", "b"])
    with pytest.raises(ValueError, match="at least one token"):
        clf(np.full((1, 4), PAD))


def test_dataset_counts_cuts_and_dropped_characters():
    tok = CharTokenizer.from_text("abc ")
    ds = ClassificationDataset([("abc", "x"), ("a b c a b c", "y"), ("aXbY", "x")], tok, 6)
    assert ds.labels == ["x", "y"] and ds.y.tolist() == [0, 1, 0]
    assert ds.report == {"examples": 3, "truncated": 1, "dropped_characters": 2,
                         "texts_with_dropped_characters": 1}  # fmt: skip
    x, y = ds[2]
    assert x.tolist() == tok.encode("ab") + [PAD] * 4 and y == 0
    assert "1 cut to 6 tokens" in ds.describe()
    with pytest.raises(ValueError, match=r"examples\[0\] has label 'z', not one of"):
        ClassificationDataset([("abc", "z")], tok, 6, labels=["x", "y"])


def test_naive_bayes_worked_example_by_hand():
    nb = NaiveBayes(alpha=1.0).fit(["good game", "bad sound"], [0, 1])
    theta = np.exp(nb.log_theta)
    game = nb.vocab["game"]
    assert theta[0, game] == pytest.approx(2 / 6) and theta[1, game] == pytest.approx(1 / 6)
    assert nb.predict(["game game", "sound of the night"]).tolist() == [0, 1]
    assert words("Play 3D chess!") == ["play", "3d", "chess"]


def test_confusion_matrix_and_accuracy_by_hand(tmp_path):
    m = confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert accuracy([0, 0, 1, 2, 2], [0, 1, 1, 2, 0]) == 0.6 == np.trace(m) / m.sum()
    plot_confusion({"model": m, "baseline": m}, ["a", "b", "c"], tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_a_classifier_learns_a_separable_task():
    tok = CharTokenizer.from_text("abcdefgh ")
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(list("abcd" if k % 2 else "efgh"), 8)) for k in range(64)]
    data = ClassificationDataset([(t, "low" if k % 2 else "high") for k, t in enumerate(texts)],
                                 tok, 10)  # fmt: skip
    clf = SequenceClassifier(_model(vocab=tok.vocab_size, block=10), data.labels, pooling="mean")
    before = accuracy(data.y, predict(clf, data))
    Trainer(clf, data, max_steps=40, batch_size=16, lr=3e-3, warmup=2, log_interval=0,
            eval_interval=0, out_dir=None).train()  # fmt: skip
    assert accuracy(data.y, predict(clf, data)) == 1.0 > before - 1e-9


# --- the labelled data set --------------------------------------------------------------------
def test_debian_sections_corpus_is_balanced_and_well_formed():
    pairs = load_pairs("debian_sections")
    labels = [label for _, label in pairs]
    assert len(pairs) == 1500 and {labels.count(s) for s in set(labels)} == {250}
    assert sorted(set(labels)) == ["games", "graphics", "mail", "net", "science", "sound"]
    assert all(80 <= len(text) <= 240 for text, _ in pairs)
    assert len({text for text, _ in pairs}) == 1500
    records = [json.loads(line) for line in (REPO / "data" / "debian_sections.jsonl").open()]
    summaries = {
        json.loads(line)["package"] for line in (REPO / "data" / "debian_summaries.jsonl").open()
    }
    assert not {r["package"] for r in records} & summaries  # no overlap with the LM corpus


def test_prepare_sections_helpers_by_hand():
    spec = importlib.util.spec_from_file_location("prep", REPO / "data" / "prepare_sections.py")
    prep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prep)
    records = prep.parse_index(
        "Package: a\nSection: games\nDescription-en: Tool\n Does x.\n .\n More.\n"
    )
    assert records == [
        {"Package": "a", "Section": "games", "Description-en": "Tool\nDoes x.\n.\nMore."}
    ]
    long = "Chess engine\n" + " ".join(["It plays chess well."] * 20)
    text = prep.text_of(long)
    assert text.startswith("Chess engine. It plays") and len(text) <= 240 and text.endswith(".")
    assert prep.text_of("Tool\n  verbatim line") is None
    assert prep.text_of("Tool\nShort.") is None  # under 80 characters


def test_prepare_sections_every_usable_description_with_per_section_zero():
    spec = importlib.util.spec_from_file_location("prep", REPO / "data" / "prepare_sections.py")
    prep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prep)
    body = " It is a program that does one useful thing for its users, and it does it well."
    packages = [{"Package": f"p{i}", "Section": s, "Description-md5": str(i)}
                for i, s in enumerate(["games", "games", "mail"] + list(prep.SECTIONS))]  # fmt: skip
    translations = [{"Package": p["Package"], "Description-md5": p["Description-md5"],
                     "Description-en": f"Tool {p['Package']}\nNumber {p['Package']}.{body}"}
                    for p in packages]  # fmt: skip
    records = prep.select(packages, translations, per_section=0)
    assert len(records) == 9 and sum(r["target"] == "games" for r in records) == 3
    with pytest.raises(ValueError, match="has only 3 usable"):
        prep.select(packages, translations, per_section=4)


def test_prepare_descriptions_leaves_out_labelled_packages_and_their_wording():
    from minroots.corpora.prepare_descriptions import fingerprints, select

    assert fingerprints(["Chess game. Plays chess on three boards."]) == {
        "Plays chess on three boards."
    }
    prints = fingerprints(["Mail tool. Reads mail from many accounts at once, quickly."])
    long = " It has many options and a manual, and it is small and quick to start up."
    records = [
        {"package": "a", "summary": "A", "lines": ["Does a." + long]},
        {"package": "b", "summary": "B", "lines": ["Does b." + long]},
        {"package": "c", "summary": "C", "lines": ["Does a." + long]},  # a's text again
        {
            "package": "d",
            "summary": "D",
            "lines": ["Reads mail from many accounts at once, quickly." + long],
        },
        {"package": "e", "summary": "E", "lines": ["Short."]},
        {"package": "f", "summary": "F", "lines": ["Intro:" + long, "  * a list"]},
    ]
    assert select(records, exclude={"b"}, prints=prints) == ["A\nDoes a." + long]


def test_the_experiment_reads_another_labelled_file_and_more_pretraining_text(tmp_path):
    from minroots.posttrain.section_classification import pretraining_text

    path = tmp_path / "labelled.jsonl"
    rows = [{"package": f"pkg{i}", "source": f"text {i}", "target": "games"} for i in range(40)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    train, test = split_sections(path=path)
    assert len(train) + len(test) == 40 and 0 < len(test) < 20
    base = pretraining_text(train)
    assert pretraining_text(train, "more text") == base + "\n\nmore text"
    assert base.endswith(train[-1]["source"])
