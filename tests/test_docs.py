"""Links into the repository's docs resolve: every `docs/<name>.md#<anchor>`,
`bench/RESULTS.md#<anchor>` or `CONTRIBUTING.md#<anchor>` cited in the code, tests and docs
names a heading of that file (GitHub's anchor rule: lower case, punctuation dropped, spaces to
hyphens), and so does every `](#anchor)` link of the README."""
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["docs/keras_semantics.md", "CONTRIBUTING.md"]
CITE = re.compile(r"((?:docs/[A-Za-z0-9_]+|bench/RESULTS|CONTRIBUTING)\.md)#([a-z0-9_-]+)")
# A comment that wraps inside an anchor (`docs/<name>.md#when-auto-`, then `// picks`): it goes
# on with the next line's first word.
WRAPPED = re.compile(r"^[\s/#*-]*([a-z0-9_-]+)")


def anchors(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        heads = [m.group(1) for m in re.finditer(r"^#+\s+(.+?)\s*$", f.read(), re.M)]
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def cited_files():
    """The tracked text files (git ls-files), or a walk of the tree outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        out = [os.path.relpath(os.path.join(d, f), ROOT) for d, _, fs in os.walk(ROOT)
               if ".git" not in d for f in fs]
    return [p for p in out if p.endswith((".py", ".md", ".h", ".cpp", ".cu", ".cuh", ".pyi"))]


@pytest.mark.skipif(not all(os.path.isfile(os.path.join(ROOT, d)) for d in DOCS),
                    reason="the source tree's docs are not next to these tests")
def test_cited_doc_anchors_exist():
    known = {}
    bad, seen = [], 0
    for path in cited_files():
        full = os.path.join(ROOT, path)
        if not os.path.isfile(full):
            continue
        with open(full, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
        for n, line in enumerate(lines, 1):
            for m in CITE.finditer(line):
                doc, anchor = m.groups()
                if anchor.endswith("-") and m.end() == len(line.rstrip()) and n < len(lines):
                    more = WRAPPED.match(lines[n])
                    anchor += more.group(1) if more else ""
                seen += 1
                if doc not in known:
                    known[doc] = anchors(doc) if os.path.isfile(os.path.join(ROOT, doc)) \
                        else set()
                if anchor not in known[doc]:
                    bad.append(f"{path}:{n}: {doc}#{anchor}")
    assert seen, "no citations found: is this the source tree?"
    assert not bad, "citations of missing headings:\n" + "\n".join(bad)


@pytest.mark.skipif(not os.path.isfile(os.path.join(ROOT, "README.md")),
                    reason="the source tree's README is not next to these tests")
def test_readme_section_links_exist():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        links = re.findall(r"\]\(#([a-z0-9_-]+)\)", f.read())
    assert links, "the README links none of its sections"
    missing = sorted(set(links) - anchors("README.md"))
    assert not missing, f"README links to missing sections: {missing}"
