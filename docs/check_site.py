"""Check a built docs site: no raw Sphinx roles, no unrendered math, every formula typesets.

Run by ``make docs`` after ``mkdocs build`` and by ``tests/test_docs.py`` (slow set):

    python docs/check_site.py site

Fails (exit 1, one line per problem) on

- raw Sphinx roles (``:func:`x```, ``:class:``, ``:mod:``, ...) or ``Example::`` literal-block
  markers in the text of any page (docstrings must be Google style / markdown);
- ``$$`` or ``$...\\command...$`` left in the text outside code (math that arithmatex did not
  pick up, so KaTeX never sees it);
- a page with math that does not load the vendored KaTeX;
- a formula KaTeX cannot parse (checked with ``node`` and the vendored ``katex.min.js`` when
  node is installed; skipped with a note otherwise).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

KATEX = Path(__file__).resolve().parent / "assets" / "katex" / "katex.min.js"
ROLE = re.compile(r"(?<![\w:]):(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj|const|ref|term):")
LITERAL_MARKER = re.compile(r"[A-Za-z0-9)\]]::[^\S\n]*$", re.M)
RAW_MATH = re.compile(r"\$\$[^$]*\$\$|\$\$|\$[^$\s][^$\n]*\\[A-Za-z]+[^$\n]*\$")
BLOCKS = {"p", "div", "li", "td", "th", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "dd", "dt", "table", "section"}


class _Page(HTMLParser):
    """Text outside code/scripts, and the TeX of every arithmatex element."""

    SKIP = {"code", "pre", "script", "style", "kbd"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.math: list[tuple[str, bool]] = []
        self._skip = 0
        self._math_depth = 0
        self._math_buf: list[str] = []
        self._math_display = False
        self._stack: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        if tag in ("br", "img", "hr", "meta", "link", "input"):
            return
        self._stack.append(tag)
        if self._math_depth:
            self._math_depth += 1
            return
        if "arithmatex" in (a.get("class") or "").split():
            self._math_depth = 1
            self._math_buf = []
            self._math_display = tag == "div"
            return
        if tag in self.SKIP:
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("br", "img", "hr", "meta", "link", "input"):
            return
        if self._stack:
            self._stack.pop()
        if self._math_depth:
            self._math_depth -= 1
            if self._math_depth == 0:
                self.math.append(("".join(self._math_buf), self._math_display))
            return
        if tag in self.SKIP and self._skip:
            self._skip -= 1
        if tag in BLOCKS and not self._skip:
            self.text.append("\n")

    def handle_data(self, data):
        if self._math_depth:
            self._math_buf.append(data)
        elif not self._skip:
            self.text.append(data)


def _strip_delimiters(tex: str) -> tuple[str, bool]:
    tex = tex.strip()
    for left, right, display in (("\\[", "\\]", True), ("\\(", "\\)", False), ("$$", "$$", True)):
        if tex.startswith(left) and tex.endswith(right):
            return tex[len(left) : -len(right)], display
    return tex, False


def check(site: Path) -> tuple[list[str], int, str]:
    """``(problems, formulas checked, note)`` for the site in ``site``."""
    problems: list[str] = []
    formulas: list[tuple[str, bool, str]] = []
    pages = sorted(site.rglob("*.html"))
    if not pages:
        return [f"{site}: no HTML pages (build the site first: mkdocs build)"], 0, ""
    for page in pages:
        rel = page.relative_to(site)
        if rel.parts[0] in ("assets", "search") or rel.name == "404.html":
            continue
        parser = _Page()
        parser.feed(page.read_text(encoding="utf-8"))
        text = html.unescape("".join(parser.text))
        for m in ROLE.finditer(text):
            snippet = text[max(0, m.start() - 30) : m.end() + 30].replace("\n", " ")
            problems.append(f"{rel}: raw Sphinx role {m.group(0)!r} in '...{snippet}...'")
        for m in LITERAL_MARKER.finditer(text):
            line = text[: m.end()].rsplit("\n", 1)[-1].strip()
            problems.append(f"{rel}: Sphinx literal-block marker '::' in '{line[-60:]}'")
        for m in RAW_MATH.finditer(text):
            problems.append(f"{rel}: unrendered math {m.group(0)[:60]!r} (not picked up by arithmatex)")
        if parser.math and not any(s.endswith("katex.min.js") for s in parser.scripts):
            problems.append(f"{rel}: has math but does not load assets/katex/katex.min.js")
        for tex, display in parser.math:
            body, disp = _strip_delimiters(tex)
            formulas.append((body, display or disp, str(rel)))
    note = ""
    node = shutil.which("node")
    if formulas and node and KATEX.exists():
        script = (
            "const katex = require(process.argv[1]);"
            "const items = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
            "const bad = [];"
            "for (const [tex, display, page] of items) {"
            "  try { katex.renderToString(tex, {displayMode: display, throwOnError: true}); }"
            "  catch (e) { bad.push(page + ': KaTeX cannot typeset ' + JSON.stringify(tex.slice(0, 60)) + ': ' + e.message.split('\\n')[0]); }"
            "}"
            "console.log(JSON.stringify(bad));"
        )
        run = subprocess.run(
            [node, "-e", script, str(KATEX)], input=json.dumps(formulas), capture_output=True, text=True, timeout=120
        )
        if run.returncode != 0:
            problems.append(f"node/KaTeX failed: {run.stderr.strip().splitlines()[-1] if run.stderr else run.returncode}")
        else:
            problems += json.loads(run.stdout)
    elif formulas:
        note = "node not found: formulas not typeset-checked"
    return problems, len(formulas), note


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    site = Path(argv[0] if argv else "site")
    problems, n, note = check(site)
    for p in problems:
        print(p)
    status = "FAILED" if problems else "ok"
    print(f"check_site {status}: {len(problems)} problems, {n} formulas" + (f" ({note})" if note else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
