#!/usr/bin/env python3
"""Draws the module graph of a crate from its `use` statements and paths.

    scripts/module-graph.py crates/procq            # layers, then any cycle
    scripts/module-graph.py --edges crates/procq    # each module and what it uses, top down
    scripts/module-graph.py --check crates/*        # exit 1 if a cycle exists

A module is a source file (`foo.rs` or `foo/mod.rs` is `foo`, `foo/bar.rs`
is `foo::bar`; `lib.rs` and `main.rs` are the crate root `crate`). There is
an edge A -> B when A names B through `crate::`, `super::`, `self::` or
a child module's name (in a `use` tree or inline), or through a name the crate root or another
module re-exports from B (`pub use`). Inline `#[cfg(test)] mod tests { .. }`
blocks are left out: a file's unit tests may reach anywhere; so are
`#[cfg(doc)] use` imports, which only serve intra-doc links. `mod b;`
declarations are not edges (declaring a child is not using it).

"Layers": a module's layer is one more than the highest layer it uses, so
every arrow points to a lower layer; a cycle makes that impossible and is
reported as a strongly connected component.
"""

import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments_and_strings(src):
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', src[i:i + 10]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', src[i:]).group(1)
            end = src.find('"' + hashes, i + 2 + len(hashes))
            out.append('""')
            i = n if end < 0 else end + 1 + len(hashes)
        elif c == '"':
            i += 1
            while i < n and src[i] != '"':
                i += 2 if src[i] == "\\" else 1
            out.append('""')
            i += 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", src[i:i + 4]):
            m = re.match(r"'(\\.[^']*|[^\\'])'", src[i:])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_doc_only(src):
    """Removes `#[cfg(doc)] use ..;` imports: they serve intra-doc links only."""
    return re.sub(r"#\[cfg\(doc\)\]\s*(pub(\([^)]*\))?\s+)?use\s+[^;]+;", "", src)


def strip_test_modules(src):
    """Removes `#[cfg(test)] mod NAME { ... }` blocks (brace matched)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+" + IDENT + r"\s*\{", src)
        if not m:
            return src
        depth, i = 1, m.end()
        while i < len(src) and depth:
            depth += {"{": 1, "}": -1}.get(src[i], 0)
            i += 1
        src = src[:m.start()] + src[i:]


def expand_use_tree(tree):
    """`a::{b, c::{d, e as f}}` -> [["a","b"], ["a","c","d"], ["a","c","e"]]."""
    tree = re.sub(r"\s+as\s+" + IDENT, "", tree)
    tree = re.sub(r"\s+", "", tree)
    results = []

    def walk(prefix, s):
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += ch == "{"
            depth -= ch == "}"
            cur += ch
        parts.append(cur)
        for p in parts:
            if not p:
                continue
            k = p.find("{")
            if k >= 0:
                head = [x for x in p[:k].split("::") if x]
                walk(prefix + head, p[k + 1:p.rfind("}")])
            else:
                results.append(prefix + [x for x in p.split("::") if x])

    walk([], tree)
    return results


def module_of(rel):
    rel = rel[:-3]
    if rel in ("lib", "main"):
        return ()
    parts = rel.split("/")
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def load(crate_dir):
    src_dir = os.path.join(crate_dir, "src")
    # `#[path = "x.rs"] mod name;` names a file after another module.
    renamed = {}
    for root, _, files in os.walk(src_dir):
        for f in files:
            if f.endswith(".rs"):
                path = os.path.join(root, f)
                declarer = module_of(os.path.relpath(path, src_dir))
                text = open(path).read()
                for pm in re.finditer(r'#\[path\s*=\s*"([^"]+)"\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(' + IDENT + ")", text):
                    target = os.path.normpath(os.path.join(root, pm.group(1)))
                    renamed[os.path.relpath(target, src_dir)] = tuple(declarer) + (pm.group(2),)
    mods = {}
    for root, _, files in os.walk(src_dir):
        for f in files:
            if f.endswith(".rs"):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, src_dir)
                if rel.startswith("bin/"):
                    continue
                mod = renamed.get(rel) or module_of(rel)
                for r, m in renamed.items():
                    if r.endswith("/mod.rs") and rel.startswith(r[:-len("mod.rs")]) and rel != r:
                        mod = m + module_of(rel[len(r) - len("mod.rs"):])
                text = strip_doc_only(strip_test_modules(strip_comments_and_strings(open(path).read())))
                mods[mod] = text
    return mods


def name(mod):
    return "::".join(mod) if mod else "crate"


def graph(mods):
    uses = {m: [] for m in mods}        # module -> list of absolute paths
    reexports = {m: {} for m in mods}   # module -> {exported name: absolute path}
    for m, text in mods.items():
        for um in re.finditer(r"(pub(\([^)]*\))?\s+)?use\s+([^;]+);", text):
            is_pub = bool(um.group(1))
            for p in expand_use_tree(um.group(3)):
                ap = absolute(m, p, mods)
                if ap is None:
                    continue
                uses[m].append(ap)
                if is_pub and ap and ap[-1] not in ("*", "self"):
                    reexports[m][ap[-1]] = ap
        body = re.sub(r"(pub(\([^)]*\))?\s+)?use\s+[^;]+;", "", text)
        for pm in re.finditer(r"(?<![A-Za-z0-9_:])(" + IDENT + r"(?:::" + IDENT + ")+)", body):
            ap = absolute(m, pm.group(1).split("::"), mods)
            if ap is not None:
                uses[m].append(ap)
    edges = {m: set() for m in mods}
    for m, paths in uses.items():
        for p in paths:
            t = resolve(mods, reexports, p)
            if t is not None and t != m:
                edges[m].add(t)
    return edges


def absolute(mod, path, mods):
    """Turns a `crate::`/`super::`/`self::` path, or one that starts with a
    child module's name (2018 paths), into a path from the root."""
    if not path:
        return None
    head, rest = path[0], path[1:]
    if tuple(mod) + (head,) in mods:
        base, rest = mod, path
    elif head == "crate":
        base = ()
    elif head == "self":
        base = mod
    elif head == "super":
        base = mod[:-1]
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    else:
        return None
    return tuple(base) + tuple(x for x in rest if x != "self")


def resolve(mods, reexports, path, depth=0):
    """The module a path designates: its longest module prefix, following
    re-exports of the next name through that module."""
    for k in range(len(path), -1, -1):
        if path[:k] in mods:
            mod = path[:k]
            nxt = path[k] if k < len(path) else None
            if depth < 8 and nxt in reexports.get(mod, {}):
                target = reexports[mod][nxt] + path[k + 1:]
                if target[:len(mod)] != mod or len(target) > len(path[:k + 1]):
                    r = resolve(mods, reexports, target, depth + 1)
                    if r is not None:
                        return r
            return mod
    return None


def sccs(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    return [c for c in out if len(c) > 1]


def layers(edges, cycles):
    rep = {}
    for c in cycles:
        for v in c:
            rep[v] = min(c)
    node = lambda v: rep.get(v, v)
    level = {}

    def lvl(v, seen=()):
        v = node(v)
        if v in level:
            return level[v]
        members = [u for u in edges if node(u) == v]
        below = [node(w) for u in members for w in edges[u] if node(w) != v]
        level[v] = 1 + max((lvl(w) for w in below), default=-1)
        return level[v]

    for v in edges:
        lvl(v)
    return level, node


def main():
    args = sys.argv[1:]
    show_edges = "--edges" in args
    check = "--check" in args
    crates = [a for a in args if not a.startswith("--")]
    found = False
    for crate in crates:
        mods = load(crate)
        edges = graph(mods)
        cycles = sccs(edges)
        found |= bool(cycles)
        if check:
            for c in cycles:
                print(f"{crate}: import cycle: " + " <-> ".join(name(v) for v in sorted(c)))
                for v in sorted(c):
                    back = sorted(name(w) for w in edges[v] if w in c)
                    print(f"    {name(v)} -> {', '.join(back)}")
            continue
        print(f"# {crate}: {len(mods)} modules")
        level, node = layers(edges, cycles)
        by = {}
        for v in edges:
            by.setdefault(level[node(v)], []).append(v)
        for k in sorted(by, reverse=True):
            if show_edges:
                for v in sorted(by[k], key=name):
                    uses = sorted(edges[v], key=lambda w: (-level[node(w)], name(w)))
                    print(f"{k:>2}  {name(v):<28} -> {', '.join(name(w) for w in uses) or '-'}")
            else:
                print(f"layer {k}: " + ", ".join(sorted(name(v) for v in by[k])))
        for c in cycles:
            print("CYCLE: " + " <-> ".join(name(v) for v in sorted(c)))
        print()
    if check and not found:
        print("no import cycles in " + ", ".join(crates))
    sys.exit(1 if (check and found) else 0)


if __name__ == "__main__":
    main()
