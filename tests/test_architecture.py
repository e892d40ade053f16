"""The house rules that a reader of the import graph can check (../shared/style.md):

- imports point one way: no cycle between modules of different packages (a blueprint package
  importing its own view modules is Flask's usual wiring and stays inside one package);
- no import inside a function in the domain, documents, web helpers, security mechanisms or
  model (a lazy import there hides a cycle); the app factory's and the CLI's lazy imports are
  wiring, as in microblog;
- the domain imports nothing from the faces (auth, selfcare, staff, api) nor Flask's request;
- every module under 600 lines, or its docstring says why it is kept whole;
- a DomainError is raised with a translatable message, never a plain or f-string.
"""
from __future__ import annotations

import ast
from pathlib import Path

import portal

ROOT = Path(portal.__file__).resolve().parent
NO_LAZY_IMPORTS = ("portal.domain", "portal.documents", "portal.web", "portal.models", "portal.security")
FACES = ("portal.auth", "portal.selfcare", "portal.staff", "portal.api")
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), filename=str(path)) for name, path in MODULES.items()}


def _package(name: str) -> str:
    path = MODULES[name]
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _imported(name: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The portal modules an import statement loads (a `from package import module` loads the
    module; a `from module import name` loads the module)."""
    found = set()
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        if node.level:
            base = _package(name).split(".")
            base = base[: len(base) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
    for target in targets:
        if target in MODULES:
            found.add(target)
    return found


def _top_level_imports(tree: ast.Module):
    """Imports that run when the module loads: module level, including under `if`/`try`,
    excluding `if TYPE_CHECKING:` blocks."""
    def walk(body):
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                yield node
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    yield from walk(node.body)
                yield from walk(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                    yield from walk(block)
    yield from walk(tree.body)


def _function_imports(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    yield node.name, inner


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, tree in TREES.items():
        edges = set()
        for node in _top_level_imports(tree):
            edges |= _imported(name, node)
        for _function, node in _function_imports(tree):
            edges |= _imported(name, node)
        graph[name] = edges - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _top_package(name: str) -> str:
    return ".".join(name.split(".")[:2])


def test_no_import_cycle_between_packages():
    crossing = [c for c in _cycles(_graph()) if len({_top_package(m) for m in c}) > 1]
    assert crossing == []


def test_no_import_cycle_inside_the_domain():
    """Function-level imports used to hide lifecycle → agreements → dunning → lifecycle."""
    domain = [c for c in _cycles(_graph()) if all(m.startswith("portal.domain") for m in c)
              and not any(MODULES[m].name == "__init__.py" for m in c)]
    assert domain == []


def test_no_imports_inside_functions_below_the_faces():
    found = [f"{name}:{node.lineno} in {function}()"
             for name, tree in TREES.items() if name.startswith(NO_LAZY_IMPORTS)
             for function, node in _function_imports(tree)]
    assert found == []


def test_the_domain_does_not_import_the_faces_or_the_request():
    found = []
    for name, tree in TREES.items():
        if not name.startswith("portal.domain"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level:
                module = node.module or ""
                if module.startswith(FACES) or (module == "flask" and any(
                        alias.name in {"request", "session", "g"} for alias in node.names)):
                    found.append(f"{name}:{node.lineno} {module}")
            elif isinstance(node, ast.Import):
                found += [f"{name}:{node.lineno} {a.name}" for a in node.names if a.name.startswith(FACES)]
    assert found == []


def test_modules_are_short_or_say_why_they_are_whole():
    long = []
    for name, path in MODULES.items():
        lines = len(path.read_text().splitlines())
        docstring = ast.get_docstring(TREES[name]) or ""
        if lines > MAX_LINES and "Kept whole:" not in docstring:
            long.append(f"{name} ({lines} lines)")
    assert long == []


def _is_plain_text(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str)) \
        or (isinstance(node, ast.BinOp) and (_is_plain_text(node.left) or _is_plain_text(node.right))) \
        or (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"format", "join"} and _is_plain_text(node.func.value))


def _domain_error_names() -> set[str]:
    """DomainError and its subclasses anywhere in the domain (errors live in their own
    modules and are imported where they are raised)."""
    classes = [node for name, tree in TREES.items() if name.startswith("portal.domain")
               for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    names = {"DomainError"}
    changed = True
    while changed:
        changed = False
        for node in classes:
            if node.name not in names and any(
                    (isinstance(b, ast.Name) and b.id in names) or (isinstance(b, ast.Attribute) and b.attr in names)
                    for b in node.bases):
                names.add(node.name)
                changed = True
    return names


def test_refusals_are_translatable():
    """A DomainError carries gettext/lazy_gettext text with placeholders, so the reader sees it
    in their language; a plain or f-string would be English for everybody."""
    plain = []
    errors = _domain_error_names()
    for name, tree in TREES.items():
        if not name.startswith("portal.domain"):
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            func = node.exc.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in errors and node.exc.args and _is_plain_text(node.exc.args[0]):
                plain.append(f"{name}:{node.lineno}")
    assert plain == []


def test_the_checks_can_fail():
    """The graph reader sees a planted cycle, a planted lazy import and a planted plain refusal."""
    assert _cycles({"a.x": {"b.y"}, "b.y": {"a.x"}}) == [["a.x", "b.y"]]
    tree = ast.parse("def f():\n    import os\n")
    assert [n for _f, n in _function_imports(tree)]
    assert _is_plain_text(ast.parse('f"Invoice {n} is paid."', mode="eval").body)
    assert not _is_plain_text(ast.parse('_("Invoice %(n)s is paid.", n=n)', mode="eval").body)
