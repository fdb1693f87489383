"""The worked examples in the docstrings of minroots.metrics run and give what they say.

Book chapter 8, "Evaluation" (``book/08_evaluation.md``).
"""

import doctest
import importlib

import pytest

MODULES = [
    "minroots.metrics",
    "minroots.metrics._inputs",
    "minroots.metrics.bleu",
    "minroots.metrics.bleu_tokenizers",
    "minroots.metrics.chrf",
    "minroots.metrics.rouge",
    "minroots.metrics.porter",
    "minroots.metrics.bootstrap",
    "minroots.metrics.perplexity",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
    assert result.attempted > 0, f"{name} has no docstring example"


def test_every_module_names_its_book_chapter():
    for name in MODULES + ["minroots.metrics.cli"]:
        doc = importlib.import_module(name).__doc__
        assert 'Book chapter 8, "Evaluation" (``book/08_evaluation.md``)' in doc, name
