#!/usr/bin/env python3
"""Fails when the modules of a crate depend on each other in a circle.

Every file is a module (`lib.rs` the crate's root, `x/mod.rs` the module x).
The crate root (the server's module record and its hooks) may be named by
every module: it does not count. A module depends on another when it names it: in a `use` line, or as a path
written anywhere in its code (`crate::a::b`, `super::b`, `self::c`), bodies
included. Its `#[cfg(test)] mod ... { }` blocks do not count: a test may
reach anywhere. A name resolves to the deepest module it reaches, so
`crate::daemon::frame::Kind` is a dependency on `daemon::frame`, and
`crate::daemon::Event` one on `daemon` itself.

Usage: build/circles.py [CRATE_SRC_DIR...]   (default: every crate here)
Prints each circle with one line that makes each of its edges; exits 1 if
there is one.
"""

import os
import re
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["core/src", "mod_nginx/src", "mod_apache/src", "cli/src", "tests/src"]

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(code):
    """The code with comments, strings and char literals blanked out
    (newlines kept, so line numbers hold)."""
    out = []
    i, n = 0, len(code)
    while i < n:
        c = code[i]
        if code.startswith("//", i):
            j = code.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif code.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if code.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif code.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", code[i:j]))
            i = j
        elif re.match(r'(b|c)?r(#*)"', code[i:i + 10]) and (i == 0 or not re.match(r"\w", code[i - 1])):
            m = re.match(r'(b|c)?r(#*)"', code[i:])
            end = '"' + m.group(2)
            j = code.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", code[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and code[j] != '"':
                j += 2 if code[j] == "\\" else 1
            # The same length: offsets and lines hold.
            out.append('"' + re.sub(r"[^\n]", " ", code[i + 1:j]) + '"')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'|'\\x..'", code[i:i + 12]):
            m = re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'|'\\x..'", code[i:])
            out.append(" " * m.end())
            i += m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def without_test_modules(code):
    """Blanks `#[cfg(test)] mod NAME { ... }` blocks (code already stripped)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+" + IDENT + r"\s*\{", code)
        if not m:
            return code
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        code = code[:m.start()] + re.sub(r"[^\n]", " ", code[m.start():j]) + code[j:]


def use_tree_paths(text):
    """The paths a use tree names: `a::{b, c::{d, e}}` -> a::b, a::c::d, ..."""
    text = re.sub(r"\s+", "", text)
    paths = []

    def walk(prefix, s):
        depth, start, parts = 0, 0, []
        for k, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:k])
                start = k + 1
        parts.append(s[start:])
        for p in parts:
            if not p:
                continue
            brace = p.find("{")
            if brace >= 0 and p.endswith("}"):
                walk(prefix + p[:brace], p[brace + 1:-1])
            else:
                paths.append(prefix + re.split(r"\bas\b", p)[0])

    walk("", text)
    return paths


def module_of(path, src):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("lib", "main"):
        rel = rel[:-1]
    elif rel[-1] == "mod":
        rel = rel[:-1]
    return tuple(rel)


def inline_modules(code):
    """(start, end) of each inline `mod NAME { ... }` block."""
    spans = []
    for m in re.finditer(r"\bmod\s+" + IDENT + r"\s*\{", code):
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        spans.append((m.end(), j))
    return spans


def references(code, module, children):
    """(line, absolute module path) for each path the code names.
    `children`: the names of the module's own submodules, which its code may
    name without `self::`."""
    # `super` is the parent of the module; for x/mod.rs, the module is x.
    here = list(module)
    found = []

    spans = inline_modules(code)

    def resolve(parts, at=0):
        parts = [p for p in parts if p]
        if not parts:
            return None
        # Inside an inline module, `super` first leaves it, staying in
        # this file's module; `self` is the inline module, part of it too.
        inner = sum(1 for a, b in spans if a <= at < b)
        while inner and parts and parts[0] == "super":
            parts, inner = parts[1:], inner - 1
        if inner and parts and parts[0] not in ("crate", "super", "self"):
            return None
        if not parts:
            return None
        if parts[0] == "crate":
            base, rest = [], parts[1:]
        elif parts[0] in children:
            base, rest = list(here), parts
        elif parts[0] in ("super", "self"):
            base = list(here)
            rest = parts
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    if not base:
                        return None
                    base = base[:-1]
                rest = rest[1:]
        else:
            return None
        return tuple(base + rest)

    heads = "|".join(["crate", "super", "self"] + sorted(children))
    for m in re.finditer(r"\buse\s+((?:" + heads + r")\s*::[^;]*);", code):
        line = code.count("\n", 0, m.start()) + 1
        for p in use_tree_paths(m.group(1)):
            r = resolve(p.split("::"), m.start())
            if r is not None:
                found.append((line, r))
    body = re.sub(r"\buse\s+[^;]*;", lambda m: re.sub(r"[^\n]", " ", m.group(0)), code)
    # `pub(in crate::x)` says who may see an item, not what it uses.
    body = re.sub(r"\bpub\s*\(\s*in\s+[^)]*\)", lambda m: " " * len(m.group(0)), body)
    # A path starts a name: not after `::` or `.`.
    for m in re.finditer(r"(?<![:.\w])((?:" + heads + r")(?:\s*::\s*" + IDENT + r")+)", body):
        line = body.count("\n", 0, m.start()) + 1
        r = resolve(re.sub(r"\s+", "", m.group(1)).split("::"), m.start())
        if r is not None:
            found.append((line, r))
    return found


def crate_graph(src):
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                p = os.path.join(root, name)
                files[module_of(p, src)] = p
    codes = {
        mod: without_test_modules(strip(open(path, encoding="utf-8").read()))
        for mod, path in files.items()
    }

    def children_of(mod):
        return {m[-1] for m in files if len(m) == len(mod) + 1 and m[:-1] == mod}

    def deepest(target):
        t = target
        while t and t not in files:
            t = t[:-1]
        return t

    # What each module re-exports (`pub use a::X;`): a name reached through
    # it depends on where the name is defined, not on the re-exporter.
    exports = {}
    for mod, code in codes.items():
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]*);", code):
            for p in use_tree_paths(m.group(1)):
                parts = p.split("::")
                got = references("use " + p + ";", mod, children_of(mod))
                if got and parts[-1] not in ("*", "self"):
                    exports.setdefault(mod, {})[parts[-1]] = deepest(got[0][1])

    edges = {}
    for mod, path in files.items():
        for line, target in references(codes[mod], mod, children_of(mod)):
            t = deepest(target)
            rest = target[len(t):]
            if rest and rest[0] in exports.get(t, {}):
                t = exports[t][rest[0]]
            # The crate root holds the server's module record, which every
            # part names to reach its configuration (nginx's HttpModule, as
            # in ngx-rust's examples and nginx-acme); its own code is the
            # record and the hooks that call the parts. A name reached
            # through it is not a dependency on it.
            if t == mod or t not in files or t == ():
                continue
            edges.setdefault(mod, {}).setdefault(t, (path, line))
    return files, edges


def circles(nodes, edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
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
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def name(mod):
    return "::".join(mod) or "(crate root)"


def main(args):
    srcs = args or [os.path.join(TOP, c) for c in CRATES]
    found = 0
    for src in srcs:
        files, edges = crate_graph(src)
        for comp in circles(files, edges):
            found += 1
            rel = os.path.relpath(src, TOP)
            print("%s: a circle of %d modules: %s" % (rel, len(comp), ", ".join(map(name, comp))))
            members = set(comp)
            for a in comp:
                for b, (path, line) in sorted(edges.get(a, {}).items()):
                    if b in members:
                        print("    %s -> %s  (%s:%d)" % (name(a), name(b), os.path.relpath(path, TOP), line))
    if found:
        print("circles.py: %d circle(s) among modules; break each by moving what both sides need "
              "to a module both may depend on" % found)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
