"""The docs cannot drift: tutorial code runs, generated reference pages are current."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.md"))
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_code_runs(page, capsys, monkeypatch):
    monkeypatch.chdir(DOCS.parent)  # tutorials say "run from the repository root"
    blocks = FENCE.findall(page.read_text(encoding="utf-8"))
    assert blocks, f"{page.name} has no python blocks"
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)  # noqa: S102
    assert capsys.readouterr().out.strip(), "tutorials print what they show"


def test_generated_reference_pages_are_current(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.write(tmp_path)
    for name in ("cli.md", "presets.md"):
        fresh = (tmp_path / name).read_text(encoding="utf-8")
        committed = (DOCS / "reference" / name).read_text(encoding="utf-8")
        assert fresh == committed, f"docs/reference/{name} is stale: run `python docs/gen_reference.py`"
