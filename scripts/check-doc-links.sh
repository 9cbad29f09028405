#!/usr/bin/env bash
# Checks every relative link in the user guide (docs/src/*.md) and README.md: the file it
# names exists, and its #anchor, if any, is the id of a heading in that file as mdBook (and
# GitHub) makes it: the heading's text without markup, lowercased, whitespace turned into
# '-', punctuation other than '-' and '_' dropped, and a repeated id suffixed -1, -2, ….
# Links with a scheme (https:, mailto:, …) are not fetched. Exits 1 listing every broken link.
# Usage: scripts/check-doc-links.sh [FILE.md …]   (default: docs/src/*.md README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
  set -- docs/src/*.md README.md
fi
exec python3 - "$@" <<'PY'
import os
import re
import sys

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(path):
    """(line number, text) of the lines outside fenced code blocks."""
    fence = None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = FENCE.match(line)
            if m:
                mark = m.group(1)
                if fence is None:
                    fence = mark
                    continue
                if mark[0] == fence[0] and len(mark) >= len(fence) and not line.strip()[len(mark):]:
                    fence = None
                    continue
            if fence is None:
                yield n, line.rstrip("\n")


def heading_id(text):
    m = re.search(r"\{#([^}\s]+)[^}]*\}\s*$", text)
    if m:  # an explicit {#id}
        return m.group(1)
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), text)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)  # emphasis markers
    out = []
    for ch in text:
        if ch.isalnum() or ch in "_-":
            out.append(ch.lower())
        elif ch.isspace():
            out.append("-")
    return "".join(out)


_anchors = {}


def anchors(path):
    if path not in _anchors:
        ids, seen = set(), {}
        for _, line in prose_lines(path):
            m = HEADING.match(line)
            if not m:
                continue
            base = heading_id(m.group(2))
            k = seen.get(base, 0)
            seen[base] = k + 1
            ids.add(base if k == 0 else f"{base}-{k}")
        _anchors[path] = ids
    return _anchors[path]


def links(path):
    for n, line in prose_lines(path):
        m = REF_DEF.match(line)
        if m:
            yield n, m.group(1)
            continue
        bare = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
        for m in INLINE_LINK.finditer(bare):
            yield n, m.group(1)


broken, checked = [], 0
for src in sys.argv[1:]:
    if not os.path.isfile(src):
        broken.append(f"{src}: no such file")
        continue
    for n, target in links(src):
        if not target or SCHEME.match(target) or target.startswith("//"):
            continue
        checked += 1
        path, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(src), path)) if path else src
        if not os.path.exists(dest):
            broken.append(f"{src}:{n}: {target}: {dest} does not exist")
            continue
        if anchor:
            if not dest.endswith(".md") or os.path.isdir(dest):
                broken.append(f"{src}:{n}: {target}: an anchor into {dest}, which is not a Markdown file")
            elif anchor not in anchors(dest):
                broken.append(f"{src}:{n}: {target}: no heading in {dest} has the id '{anchor}'")

if broken:
    print(f"check-doc-links: {len(broken)} broken link(s) of {checked} checked:", file=sys.stderr)
    for b in broken:
        print(f"  {b}", file=sys.stderr)
    sys.exit(1)
print(f"check-doc-links: {checked} relative links in {len(sys.argv) - 1} files resolve")
PY
