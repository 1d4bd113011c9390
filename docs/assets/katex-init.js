// Typeset the math that pymdownx.arithmatex (generic mode) leaves as \( \) and \[ \] in
// <span class="arithmatex">; KaTeX is vendored in docs/assets/katex (no download at run time).
document$.subscribe(() => {
  for (const el of document.querySelectorAll(".arithmatex")) {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  }
});
