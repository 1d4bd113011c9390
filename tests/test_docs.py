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
    for name in ("cli.md", "presets.md", "schema.md"):
        fresh = (tmp_path / name).read_text(encoding="utf-8")
        committed = (DOCS / "reference" / name).read_text(encoding="utf-8")
        assert fresh == committed, f"docs/reference/{name} is stale: run `python docs/gen_reference.py`"


@pytest.mark.slow  # mkdocs build: ~15-30 s
def test_built_site_has_no_raw_roles_and_all_math_typesets(tmp_path):
    """The built HTML: no `:func:`-style roles, no `$$` left unrendered, every formula parses in KaTeX."""
    import importlib.util
    import shutil
    import subprocess
    import sys

    mkdocs = shutil.which("mkdocs") or str(Path(sys.executable).with_name("mkdocs"))
    site = tmp_path / "site"
    run = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(site)], cwd=DOCS.parent, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    spec = importlib.util.spec_from_file_location("check_site", DOCS / "check_site.py")
    check_site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_site)
    problems, n_formulas, _ = check_site.check(site)
    assert not problems, "\n".join(problems[:20])
    assert n_formulas >= 30  # docs/model.md alone has 30+


def test_check_site_catches_roles_and_raw_math(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_site", DOCS / "check_site.py")
    check_site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_site)
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text(
        "<html><body><p>See :func:<code>hwgrad.x</code> and $$a^2$$ and <code>$$ok$$</code>.</p>"
        "<p>Example::</p></body></html>",
        encoding="utf-8",
    )
    problems, _, _ = check_site.check(tmp_path)
    assert any("raw Sphinx role ':func:'" in p for p in problems)
    assert any("unrendered math" in p for p in problems)
    assert any("literal-block marker" in p for p in problems)
    assert len(problems) == 3  # the $$ inside <code> is fine


def test_schema_page_example_is_a_valid_design_file(tmp_path):
    """The example on the schema page loads and carries its numbers into the specs."""
    import importlib.util

    from hwgrad import config

    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    path = tmp_path / "design.toml"
    path.write_text(gen.full_example(), encoding="utf-8")
    d = config.load(path)
    assert float(d["system"].chip.tiers[0].bandwidth_bytes_per_s) == 4.8e12
    assert float(d["system"].network.hop_latency_s) == 2.5e-7
    assert float(d["workload"].batch) == 16 and float(d["compression"].weight_bits) == 8
    assert float(d["economics"].pue) == 1.2 and float(d["efficiency"].step_overhead_s) == 1e-3
