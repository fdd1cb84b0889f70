#!/usr/bin/env python3
"""Fails when a function of the project's crates is longer than 80 lines.

A function is counted from its `fn` line to its closing brace, doc comments
left out; its `#[cfg(test)]` modules are not counted. Flat match tables,
where each arm is one case and splitting would only scatter the table, are
named in TABLES with what they dispatch on.

Usage: build/fn_length.py [--list]   (--list: every function over the limit,
tables included)
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import circles  # noqa: E402  (its Rust stripping)

TOP = circles.TOP
LIMIT = 80
CRATES = ["core/src", "mod_nginx/src", "mod_apache/src", "cli/src", "daemon_ext/src"]

# path:function -> what its arms are.
TABLES = {
    "core/src/daemon/process/handoff.rs:decode": "one arm per handoff field tag",
    "core/src/daemon/protocol/frame.rs:decode_head": "one arm per head field tag",
    "core/src/daemon/protocol/exchange.rs:parse_next": "one arm per frame kind",
    "core/src/daemon/options.rs:set": "one arm per mod_wsgi daemon option",
    "cli/src/args.rs:parse_options": "one arm per command-line option",
}


def functions(path):
    """(name, first line, length in lines) of each function in `path`."""
    code = circles.without_test_modules(circles.strip(open(path, encoding="utf-8").read()))
    for m in re.finditer(r"\bfn\s+(\w+)\s*[<(]", code):
        depth, j = 0, m.end() - 1
        while j < len(code):
            ch = code[j]
            if ch in "(<[":
                depth += 1
            elif ch in ")>]":
                depth -= 1
            elif ch == ";" and depth <= 0:
                break
            elif ch == "{" and depth <= 0:
                break
            j += 1
        if j >= len(code) or code[j] != "{":
            continue
        braces, k = 1, j + 1
        while k < len(code) and braces:
            braces += {"{": 1, "}": -1}.get(code[k], 0)
            k += 1
        first = code.count("\n", 0, m.start()) + 1
        last = code.count("\n", 0, k) + 1
        yield m.group(1), first, last - first + 1


def main(args):
    listing = "--list" in args
    found = []
    for crate in CRATES:
        for root, _, names in os.walk(os.path.join(TOP, crate)):
            for name in sorted(names):
                if not name.endswith(".rs"):
                    continue
                path = os.path.join(root, name)
                rel = os.path.relpath(path, TOP)
                for fn, line, length in functions(path):
                    if length > LIMIT:
                        found.append((length, rel, fn, line))
    found.sort(reverse=True)
    failed = 0
    for length, rel, fn, line in found:
        table = TABLES.get("%s:%s" % (rel, fn))
        if table and not listing:
            continue
        note = " (a flat table: %s)" % table if table else ""
        print("%s:%d: %s is %d lines%s" % (rel, line, fn, length, note))
        failed += 0 if table else 1
    if failed:
        print("fn_length.py: %d function(s) over %d lines; split them by what they do" % (failed, LIMIT))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
