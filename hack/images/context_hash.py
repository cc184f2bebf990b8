"""Print a short sha256 over what a `docker build` of CONTEXT with DOCKERFILE would see.

Usage: context_hash.py CONTEXT DOCKERFILE [EXTRA_STRING...]

Files are those of CONTEXT that its .dockerignore lets through (Docker's rules: patterns are
relative to the context root, `*` and `?` never cross `/`, `**` spans directories, a matching
directory excludes everything below it, `!` re-includes, the last matching pattern wins).
EXTRA_STRINGs (tag, build args, base image) are hashed too, so changing any of them rebuilds.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path


def _to_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + "$")


def load_rules(context: Path) -> list[tuple[bool, re.Pattern[str]]]:
    ignore = context / ".dockerignore"
    rules = []
    if ignore.exists():
        for line in ignore.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            rules.append((negate, _to_regex(pattern)))
    return rules


def excluded(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = rel.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negate, regex in rules:
        if any(regex.match(p) for p in prefixes):
            result = not negate
    return result


def context_files(context: Path) -> list[str]:
    rules = load_rules(context)
    files = []
    for root, dirs, names in os.walk(context):
        dirs[:] = [d for d in dirs if d not in {".git", ".venv"}]
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), context)
            if not excluded(rel, rules):
                files.append(rel)
    return sorted(files)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    context, dockerfile = Path(argv[0]), Path(argv[1])
    digest = hashlib.sha256()
    for rel in context_files(context):
        digest.update(rel.encode() + b"\0" + hashlib.sha256((context / rel).read_bytes()).digest())
    digest.update(b"dockerfile\0" + dockerfile.read_bytes())
    for extra in argv[2:]:
        digest.update(b"extra\0" + extra.encode())
    print(digest.hexdigest()[:16])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
