#!/usr/bin/env python3
"""Top-level module graph of src/, from `use crate::…` and `crate::…` paths.

Prints one line per module with the modules it uses, and fails (exit 1) when
two top-level modules use each other, directly or through others: data should
flow one way (config → monitor → probe → state + recorder → readers), see
docs/ARCHITECTURE.md. Run by `make test`; `--dot` prints a Graphviz graph.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
# `crate::name` anywhere in code: `use crate::{a, b::c}` is expanded below.
CRATE_PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\};", re.S)


def top_module(path):
    rel = os.path.relpath(path, SRC)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def uses(text):
    found = set(CRATE_PATH.findall(text))
    for group in USE_GROUP.findall(text):
        depth = 0
        item = ""
        for ch in group + ",":
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                name = item.strip().split("::")[0].strip()
                if re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                    found.add(name)
                item = ""
            else:
                item += ch
    return found


def graph():
    edges = {}
    for root, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            module = top_module(path)
            if module in ("lib", "main"):
                continue
            with open(path, encoding="utf-8") as fh:
                text = strip_comments(fh.read())
            # Tests may reach anywhere; only the shipped code's graph counts.
            text = re.split(r"#\[cfg\(test\)\]\s*mod\s+tests", text)[0]
            for used in uses(text):
                if used != module and used not in ("self", "super"):
                    edges.setdefault(module, set()).add(used)
            edges.setdefault(module, set())
    return edges


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in edges:
                continue
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

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    edges = graph()
    if "--dot" in sys.argv:
        print("digraph modules {")
        for m in sorted(edges):
            for u in sorted(edges[m]):
                print(f'  "{m}" -> "{u}";')
        print("}")
        return 0
    for m in sorted(edges):
        print(f"{m:10} -> {', '.join(sorted(edges[m])) or '-'}")
    found = cycles(edges)
    for comp in found:
        pairs = [f"{a}->{b}" for a in comp for b in sorted(edges[a]) if b in comp]
        print(f"cycle: {' '.join(comp)}  ({', '.join(pairs)})", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
