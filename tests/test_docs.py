"""The docs cannot drift: tutorial code runs, generated reference pages are current."""

import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.md"))


#: a python block, optionally followed by the output it prints (```text after "Output:")
BLOCK = re.compile(r"^```(python|console)\n(.*?)^```\n(?:\nOutput:\n\n```text\n(.*?)^```\n)?", re.S | re.M)
NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def run_blocks(text: str, name: str, namespace: dict) -> list[tuple[re.Match, str]]:
    """Execute every python block of a page in one namespace; ``(match, what it printed)``."""
    import contextlib
    import io
    import shlex

    from hwgrad import cli

    out = []
    for i, m in enumerate(BLOCK.finditer(text)):
        buf = io.StringIO()
        if m.group(1) == "python":
            with contextlib.redirect_stdout(buf):
                exec(compile(m.group(2), f"{name}[block {i}]", "exec"), namespace)  # noqa: S102
        else:  # console: every "$ hwgrad ..." line runs through the CLI's main()
            for line in m.group(2).splitlines():
                assert line.startswith("$ hwgrad "), f"{name} block {i}: console lines are '$ hwgrad ...'"
                err = io.StringIO()
                with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
                    code = cli.main(shlex.split(line)[2:])  # drop "$ hwgrad"
                assert code == 0, f"{name} block {i}: {line} exited {code}: {err.getvalue()}"
        out.append((m, buf.getvalue()))
    return out


def same_output(shown: str, printed: str, rel: float = 2e-3) -> bool:
    """Equal text, and numbers equal within ``rel`` (float32 sums differ in the last digit
    between CPUs)."""
    if NUMBER.sub("#", shown).split() != NUMBER.sub("#", printed).split():
        return False
    for a, b in zip(NUMBER.findall(shown), NUMBER.findall(printed), strict=True):
        x, y = float(a.replace(",", "")), float(b.replace(",", ""))
        if abs(x - y) > rel * max(abs(x), abs(y)) + 1e-12 and a != b:
            return False
    return True


def write_outputs(text: str, runs) -> str:
    """``text`` with each printing block followed by its output (``HWGRAD_UPDATE_DOCS=1``)."""
    pieces, last = [], 0
    for m, printed in runs:
        pieces.append(text[last : m.start()])
        block = f"```{m.group(1)}\n{m.group(2)}```\n"
        if printed.strip():
            shown = "\n".join(line.rstrip() for line in printed.rstrip().splitlines())
            block += f"\nOutput:\n\n```text\n{shown}\n```\n"
        pieces.append(block)
        last = m.end()
    pieces.append(text[last:])
    return "".join(pieces)


#: pages that evaluate many designs (minutes on 2 shared cores): the slow set, except when
#: regenerating (``HWGRAD_UPDATE_DOCS=1`` runs every page, so one command rewrites them all)
SLOW_PAGES = {"questions", "calibrate", "codesign", "sweep", "serving"}
#: pages whose outputs are not generated yet (their code still runs): regenerate them with
#: HWGRAD_UPDATE_DOCS=1 and drop them from this set
OUTPUTS_PENDING: set[str] = set()
UPDATING = bool(os.environ.get("HWGRAD_UPDATE_DOCS"))


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW_PAGES and not UPDATING else p for p in TUTORIALS],
    ids=[p.stem for p in TUTORIALS],
)
def test_tutorial_code_runs_and_prints_what_it_shows(page, monkeypatch):
    """Every python block runs; what it prints is the output shown under it.

    Regenerate the outputs of every page (the slow ones too) with
    ``HWGRAD_UPDATE_DOCS=1 pytest tests/test_docs.py -k tutorial`` (about 3 min on 2 shared cores).
    """
    monkeypatch.chdir(DOCS.parent)  # tutorials say "run from the repository root"
    text = page.read_text(encoding="utf-8")
    runs = run_blocks(text, page.name, {"__name__": f"docs_{page.stem}"})
    assert runs, f"{page.name} has no python blocks"
    assert any(p.strip() for _, p in runs), "tutorials print what they show"
    if UPDATING:
        page.write_text(write_outputs(text, runs), encoding="utf-8")
        return
    for i, (m, printed) in enumerate(runs):
        shown = m.group(3)
        if printed.strip() and page.stem not in OUTPUTS_PENDING:
            assert shown is not None, (
                f"{page.name} block {i} prints but shows no output: run HWGRAD_UPDATE_DOCS=1 pytest {__file__} -k tutorial"
            )
        if shown is not None:
            assert same_output(shown, printed), (
                f"{page.name} block {i}: shown output is stale:\n{shown}\n--- printed ---\n{printed}"
                "\n(HWGRAD_UPDATE_DOCS=1 pytest tests/test_docs.py -k tutorial rewrites it)"
            )


def test_same_output_compares_numbers_with_a_tolerance():
    assert same_output("TPOT 12.34 ms, 1,558 tok/s", "TPOT 12.35 ms, 1,558 tok/s", rel=1e-3)
    assert not same_output("TPOT 12.34 ms", "TPOT 13.34 ms")
    assert not same_output("bound by weights", "bound by overhead")


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


def test_no_sphinx_roles_in_docstrings():
    """Docstrings are markdown (Google style): the site check's role and `::` patterns, on the source.

    The built-site check sees only the modules the API reference renders; this one sees every
    docstring of hwgrad/, benchmarks/ and experiments/ (and runs in the default suite).
    """
    import ast
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_site", DOCS / "check_site.py")
    check_site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_site)
    root = DOCS.parent
    found = []
    for folder in ("hwgrad", "benchmarks", "experiments"):
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                doc = ast.get_docstring(node, clean=False)
                if not doc:
                    continue
                line = node.body[0].lineno
                for pattern, what in ((check_site.ROLE, "Sphinx role"), (check_site.LITERAL_MARKER, "'::' marker")):
                    for m in pattern.finditer(doc):
                        where = f"{path.relative_to(root)}:{line + doc.count(chr(10), 0, m.start())}"
                        found.append(f"{where}: {what} {m.group(0).strip()!r} (use markdown backticks)")
    assert not found, "\n".join(found)
