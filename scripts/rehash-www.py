#!/usr/bin/env python3
"""Recompute content hashes of www/assets/* and rewrite references.

Asset names look like  <stem>.<hash>.<ext>  where <hash> is the first 8
lowercase hex digits of the SHA-256 of the file's bytes.  This script
renames every asset whose name does not match its content and replaces
the old file name in all text files that may reference it (index.html,
manifest.webmanifest, assets/*.css, assets/*.js).

Because rewriting a reference changes the referencing file's content
(e.g. app.css embeds the font and logo names, app.js imports vendor.js),
the process repeats until nothing changes.  The reference graph has no
cycles, so this terminates after at most "depth of graph" rounds.

Usage:  python3 rehash.py [--check]
  --check   only report; exit 1 if any name is stale.
Stdlib only.
"""
import hashlib
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "www")
ASSETS = os.path.join(ROOT, "assets")
NAME_RE = re.compile(r"^(?P<stem>[A-Za-z0-9_-]+)\.(?P<hash>[0-9a-f]{8})\.(?P<ext>[A-Za-z0-9]+)$")
TEXT_EXT = {".css", ".js", ".html", ".webmanifest"}


def content_hash(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:8]


def text_files():
    files = [os.path.join(ROOT, "index.html"), os.path.join(ROOT, "manifest.webmanifest")]
    for name in sorted(os.listdir(ASSETS)):
        if os.path.splitext(name)[1] in TEXT_EXT:
            files.append(os.path.join(ASSETS, name))
    return [f for f in files if os.path.isfile(f)]


def stale_assets():
    """Yield (old_name, new_name) for assets whose hash is out of date."""
    for name in sorted(os.listdir(ASSETS)):
        m = NAME_RE.match(name)
        if not m:
            continue
        h = content_hash(os.path.join(ASSETS, name))
        if h != m["hash"]:
            yield name, f"{m['stem']}.{h}.{m['ext']}"


def rewrite_references(old, new):
    pat = re.compile(r"(?<![A-Za-z0-9_.-])" + re.escape(old) + r"(?![A-Za-z0-9_-])")
    for path in text_files():
        with open(path, "r", encoding="utf-8", newline="") as f:
            text = f.read()
        updated = pat.sub(new, text)
        if updated != text:
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(updated)
            print(f"  rewrote {os.path.relpath(path, ROOT)}: {old} -> {new}")


def main(argv):
    if "--check" in argv:
        stale = list(stale_assets())
        for old, new in stale:
            print(f"stale: assets/{old} (content hash says {new})")
        print("all asset names match their content" if not stale else f"{len(stale)} stale asset name(s)")
        return 1 if stale else 0
    for rnd in range(1, 20):
        # Rename one asset at a time: a rename can make other names stale.
        stale = list(stale_assets())
        if not stale:
            print(f"done after {rnd - 1} rename(s); all asset names match their content")
            return 0
        # Prefer assets that reference no other stale asset (leaves first).
        stale_names = {old for old, _ in stale}
        def refs_stale(name):
            p = os.path.join(ASSETS, name)
            if os.path.splitext(name)[1] not in TEXT_EXT:
                return False
            with open(p, "r", encoding="utf-8") as f:
                t = f.read()
            return any(s in t for s in stale_names if s != name)
        old, new = next(((o, n) for o, n in stale if not refs_stale(o)), stale[0])
        print(f"rename assets/{old} -> assets/{new}")
        os.rename(os.path.join(ASSETS, old), os.path.join(ASSETS, new))
        rewrite_references(old, new)
    print("error: hashes did not converge (reference cycle?)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
