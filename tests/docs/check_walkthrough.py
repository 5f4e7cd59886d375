#!/usr/bin/env python3
"""Checks that docs/walkthrough.md names only functions that exist.

Every citation is written `Name` in `path` (Name may be qualified: `Class::Method`). The file
must exist and define the function: `Class::Method(` for a qualified name, or `Name(` at the
start of a definition or declaration for a free function. Fails when a citation does not hold,
when the walk has fewer than MIN_CITATIONS citations, or when its steps are not numbered 1…N.
Usage: check_walkthrough.py REPO_ROOT
"""
import pathlib
import re
import sys

MIN_CITATIONS = 40
CITATION = re.compile(r"`([A-Za-z_][A-Za-z0-9_:]*)` in\s+`([\w./-]+)`")
# "the same file" continues the previous citation's file.
SAME_FILE = re.compile(r"`([A-Za-z_][A-Za-z0-9_:]*)` in the same file")


def defines(source: str, name: str) -> bool:
    parts = name.split("::")
    if len(parts) > 1 and parts[-2][:1].isupper():  # Class::Method
        pattern = re.escape("::".join(parts[-2:])) + r"\s*\("
    else:  # a free function (maybe namespace-qualified): its name at a definition
        pattern = r"(^|[\s*&>])" + re.escape(parts[-1]) + r"\s*\("
    return re.search(pattern, source, re.MULTILINE) is not None


def main() -> int:
    root = pathlib.Path(sys.argv[1])
    text = (root / "docs/walkthrough.md").read_text()
    # Paragraphs joined so that citations wrapped across lines are seen whole.
    flat = re.sub(r"\s*\n\s*", " ", text)
    errors, count = [], 0
    for match in re.finditer(f"{CITATION.pattern}|{SAME_FILE.pattern}", flat):
        name, path = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), None)
        if path is None:
            path = last_path
        last_path = path
        count += 1
        file = root / path
        if not file.is_file():
            errors.append(f"{name}: no file {path}")
        elif not defines(file.read_text(errors="replace"), name):
            errors.append(f"{name}: not defined in {path}")
    steps = [int(n) for n in re.findall(r"^(\d+)\. ", text, re.MULTILINE)]
    if steps != list(range(1, len(steps) + 1)):
        errors.append(f"steps are not numbered 1…N: {steps}")
    if count < MIN_CITATIONS:
        errors.append(f"only {count} citations (expected >= {MIN_CITATIONS})")
    for e in errors:
        print(f"docs/walkthrough.md: {e}", file=sys.stderr)
    print(f"docs/walkthrough.md: {count} citations, {len(steps)} steps, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
