"""``help(ta.sketch.X)`` tells what X does, its arguments and its result; the examples run."""

from __future__ import annotations

import doctest
import inspect

import pytest

import tsdb_arrow.sketch as sk

FUNCTIONS = [n for n in sk.__all__ if inspect.isfunction(getattr(sk, n))]
CLASSES = [n for n in sk.__all__ if inspect.isclass(getattr(sk, n))]


def test_every_public_name_is_a_function_or_a_class() -> None:
    assert len(FUNCTIONS) == 12 and len(FUNCTIONS) + len(CLASSES) == len(sk.__all__)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_public_functions_document_their_arguments_and_result(name: str) -> None:
    doc = inspect.getdoc(getattr(sk, name)) or ""
    assert "Parameters\n----------" in doc and "Returns\n-------" in doc
    documented = doc.split("Parameters\n----------")[1].split("Returns\n-------")[0]
    for parameter in inspect.signature(getattr(sk, name)).parameters:
        assert parameter in documented, f"{name} does not document {parameter!r}"


@pytest.mark.parametrize("name", CLASSES)
def test_public_classes_document_their_fields(name: str) -> None:
    assert len(inspect.getdoc(getattr(sk, name)) or "") > 200


@pytest.mark.parametrize("name", FUNCTIONS)
def test_docstring_examples_run(name: str) -> None:
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(getattr(sk, name), name, globs={})
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
