"""docs/definitions.md, the page that defines every metric: it names every public name, and its examples run.

The examples are the fenced ``python`` blocks of the page, written as doctests
(``>>>`` lines and their printed values). They run in order, in one namespace,
as a reader would type them, against the library under test: every number the
page shows is recomputed here.
"""

import doctest
import re
from pathlib import Path

import pytest

import refmetrics
import refmetrics.functional

PAGE = Path(__file__).resolve().parents[1] / "docs" / "definitions.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _public_names():
    names = set(refmetrics.__all__) | set(refmetrics.functional.__all__)
    # warnings and errors are named where they are raised, not defined as metrics
    return sorted(n for n in names if not n.endswith(("Warning", "Error")))


def _blocks(text):
    """``(line number, source)`` of every fenced python block of the page."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in FENCE.finditer(text)]


def _code_spans(text):
    """The inline code spans of the page (`...`), the fenced blocks left out."""
    return re.findall(r"`([^`\n]+)`", FENCE.sub("", text))


@pytest.mark.parametrize("name", _public_names())
def test_every_public_name_is_on_the_page(name):
    # as a whole word in code (`auroc(...)`, `refmetrics.Metric`): F1Max must not count for F1, nor AUPRO for AUPR
    word = re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w)|(?<=refmetrics\.){re.escape(name)}(?!\w)")
    spans = _code_spans(PAGE.read_text(encoding="utf-8"))
    assert any(word.search(span) for span in spans), (
        f"{name} (refmetrics{'' if name in refmetrics.__all__ else '.functional'}) is not defined in {PAGE}")


def test_the_page_blocks_are_found():
    blocks = _blocks(PAGE.read_text(encoding="utf-8"))
    examples = sum(len(doctest.DocTestParser().get_examples(source)) for _, source in blocks)
    # the fence pattern finds the blocks (a change of fence style must not silently run nothing)
    assert len(blocks) >= 15 and examples >= 50, (len(blocks), examples)
    assert all(">>>" in source for _, source in blocks), "a python block without doctest lines is not checked"


def test_every_example_on_the_page_gives_the_printed_value():
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    globs = {}
    out = []
    for line, source in _blocks(PAGE.read_text(encoding="utf-8")):
        test = parser.get_doctest(source, globs, f"docs/definitions.md, block at line {line}", str(PAGE), line)
        runner.run(test, out=out.append, clear_globs=False)
        globs = test.globs
    summary = runner.summarize(verbose=False)
    assert summary.attempted >= 50
    assert summary.failed == 0, "".join(out)


@pytest.mark.parametrize("name", sorted(refmetrics.functional.__all__))
def test_every_function_points_at_its_section(name):
    doc = getattr(refmetrics.functional, name).__doc__
    found = re.search(r'Defined in ``docs/definitions.md``, section "([^"]+)"', doc)
    assert found, f"{name}'s docstring does not point at its section of docs/definitions.md"
    headings = re.findall(r"^#+ (.+)$", PAGE.read_text(encoding="utf-8"), re.MULTILINE)
    assert found.group(1) in headings, (name, found.group(1))


def test_the_installed_package_carries_the_page():
    from importlib import resources

    installed = resources.files("refmetrics").joinpath("definitions.md").read_text(encoding="utf-8")
    assert installed == PAGE.read_text(encoding="utf-8")
