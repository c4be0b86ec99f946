#!/usr/bin/env python3
"""Lists the import cycles among the files of src/: file A names an item of file B
(`use crate::x::y`, `super::z`, or a `crate::...` path in code) and B, directly or through
others, names one of A.

    python3 scripts/import-cycles.py [--src src] [--strict]

Prints each cycle (a strongly connected group of files, with the names that tie them) and
exits 1 with --strict when there is one. A file and the modules it declares inside itself
(`mod tests`) are one file; a parent module file (`mod.rs`, `x.rs` with `x/`) naming its
own child file is counted like any other edge. Text-based: comments are skipped, macros
and re-exports are taken at face value, so check a reported edge in the code before
acting on it.
"""

import argparse
import os
import re
import sys

USE_RE = re.compile(r"\b(crate|super|self)((?:::\w+)+)")


def module_files(src):
    """Maps module paths ('server::io') to files, for a crate rooted at src/lib.rs."""
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel in (["lib"], ["main"]):
                key = ""
            elif rel[-1] == "mod":
                key = "::".join(rel[:-1])
            else:
                key = "::".join(rel)
            if rel == ["main"]:
                continue
            mods[key] = path
    return mods


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def resolve(mods, base, path):
    """The longest module prefix of base::path that is a file."""
    parts = [p for p in (base.split("::") if base else []) + path if p]
    for n in range(len(parts), -1, -1):
        key = "::".join(parts[:n])
        if key in mods:
            return key
    return None


def edges(mods):
    out = {}
    for key, path in mods.items():
        with open(path, encoding="utf-8") as fh:
            text = strip_comments(fh.read())
        # `self` is this file's module, `super` its parent (mod.rs or not).
        here = key.split("::") if key else []
        found = {}
        # Grouped imports: `use crate::a::{b, c::d}` -> crate::a::b, crate::a::c::d.
        for m in re.finditer(r"\buse\s+(crate|super|self)((?:::\w+)*)::\{([^;]*)\};", text):
            root, prefix, group = m.group(1), m.group(2), m.group(3)
            for item in re.split(r"[,\s{}]+", group):
                if item and item != "self":
                    text += f"\n{root}{prefix}::{item}"
        for m in USE_RE.finditer(text):
            root, rest = m.group(1), m.group(2).split("::")[1:]
            if root == "crate":
                base = []
            elif root == "self":
                base = here
            else:
                base = here[:-1]
                while rest and rest[0] == "super":
                    rest = rest[1:]
                    base = base[:-1]
            base = "::".join(base)
            target = resolve(mods, base, rest)
            if target is not None and target != key:
                found.setdefault(target, set()).add(f"{root}::{'::'.join(rest)}")
        out[key] = found
    return out


def cycles(graph):
    """Tarjan's strongly connected components of more than one node."""
    index, low, stack, on, result = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                result.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default=os.path.join(os.path.dirname(__file__), "..", "src"))
    ap.add_argument("--strict", action="store_true", help="exit 1 when there is a cycle")
    args = ap.parse_args()
    mods = module_files(os.path.normpath(args.src))
    graph = edges(mods)
    # A parent module file declares its children (`mod x;`, `pub use x::Y`): those edges
    # point down the tree and are not cycles of their own; drop parent -> child edges.
    for parent, targets in graph.items():
        for child in list(targets):
            if parent == "" or child.startswith(parent + "::"):
                del targets[child]
    found = cycles(graph)
    name = lambda k: os.path.relpath(mods[k], os.path.dirname(os.path.normpath(args.src)))
    if not found:
        print(f"no import cycles among {len(mods)} files")
        return 0
    for group in found:
        print("cycle: " + ", ".join(name(k) for k in group))
        for a in group:
            for b in group:
                if b in graph[a]:
                    print(f"  {name(a)} -> {name(b)}: {', '.join(sorted(graph[a][b]))}")
    print(f"{len(found)} cycle(s) among {len(mods)} files")
    return 1 if args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
