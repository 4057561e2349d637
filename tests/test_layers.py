"""The layers of ARCHITECTURE.md, checked by reading the imports (issue 17): the lower layers never import the
higher ones, and no two modules import each other (directly or around a circle)."""

import ast
import pathlib

import pytest

pytestmark = pytest.mark.unit  # `make test-fast`

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "hfgen"
LOWER = ("output_folder", "models", "schedulers", "data", "pipelines", "metrics")
HIGHER = ("hfgen.training", "hfgen.cli", "hfgen.vqa", "hfgen.output_folder.hub", "hfgen.jobs", "hfgen.demo",
          "hfgen.hub_cli", "hfgen.command_line")  # fmt: skip


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: pathlib.Path) -> set[str]:
    """Every hfgen module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("hfgen"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hfgen") and not node.level:
            found.add(node.module)
    return found


SOURCES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("layer", LOWER)
def test_lower_layers_never_import_higher_ones(layer):
    for name, path in SOURCES.items():
        if not name.startswith(f"hfgen.{layer}"):
            continue
        upward = sorted(m for m in imported_modules(path) if m.startswith(HIGHER))
        assert not upward, f"{name} imports {upward}: move the shared code down (see ARCHITECTURE.md)"


def test_no_import_cycles_between_modules():
    graph = {}
    for name, path in SOURCES.items():
        targets = set()
        for module in imported_modules(path):
            while module and module not in SOURCES:  # `from hfgen.x import y` where y is a name, not a module
                module = module.rpartition(".")[0]
            if module and module != name and not name.startswith(module + "."):  # a package's own __init__
                targets.add(module)
        graph[name] = targets
    # a module's package __init__ re-exporting it is not a cycle: drop edges from a package to its own children
    for name in graph:
        graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycle = stack[stack.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_every_package_is_installed():
    """setup.cfg lists the packages explicitly: a new subpackage missing there would be left out of the wheel."""
    import configparser

    config = configparser.ConfigParser()
    config.read(PACKAGE.parent / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to [options] packages in setup.cfg"


def test_no_file_over_500_lines_and_no_function_over_80():
    """Issue 17's size limits, so that a change that grows a room past them fails here rather than in a review."""
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 500:
            too_long.append(f"{path.relative_to(PACKAGE.parent)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    too_long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, too_long
