"""Mutation testing: do the tests notice a wrong sign, operator, comparison, constant or index?

A small mutator of this project's own (no registry package: the rule library is mostly equation
strings, which generic mutators leave alone). It makes one small change at a time in a copy of the
working tree and runs the tests that should notice it; a mutant is *killed* when they fail (or
crash), *survives* when they pass. Areas:

* ``rules``: the equation strings of the rule library (``rules/*.py``, what ``plasticity rules``
  lists, the storage rules included), parsed as Python and mutated node by node: ``+`` / ``-``,
  ``*`` / ``/``, ``**`` to ``*``, ``+=`` / ``-=``, ``*=`` to ``+=``, a comparison's boundary
  (``<`` / ``<=``) and direction, a numeric constant plus one, a dropped unary minus, the side of a
  variable (``x_pre`` / ``x_post``: the index of the unit it is read from), ``sum_pre`` / ``sum_post``
  and a dropped ``cumsum_post``. Mutants the library refuses to build (a variable that does not
  exist on the other side) are *invalid*, not counted.
* ``numba templates``: the generated kernel source held in string literals of
  ``plasticity/backends/numba_*.py`` (operators between spaces, ``+=`` / ``-=``, comparisons,
  index ``[j]`` to ``[j - 1]``), and the Python code of the expression emitters
  (``numba_source.py``, ``numba_codegen.py``).
* ``torch codegen``: the Python code of ``plasticity/backends/torch_codegen.py`` (operators,
  comparisons, numeric constants, subscript offsets, ``operator.add`` / ``operator.sub`` and the like).

Python-level mutants: ``+`` / ``-``, ``*`` / ``/``, comparisons (boundary, equality, membership,
identity), ``and`` / ``or``, numeric constants plus one, constant subscripts plus one; a mutant
that does not compile is invalid. Mutants are sampled (``--per-area``, seeded) because each one
runs a test subset: on 2 cores a numba mutant recompiles its kernels (tens of seconds).

Run ``nice python benchmarks/mutation.py`` (writes ``benchmarks/results/mutation.json`` and
``mutation.md``); ``--areas rules`` runs one area, ``--list`` prints the sampled mutants.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

#: The tests run against each area's mutants, cheapest and most discriminating first (``-x`` stops
#: at the first failure, so a killed mutant costs little).
TESTS = {
    "rules": [
        ["tests/test_rule_mathematics.py"],
        ["tests/test_rule_oracles.py"],
    ],
    "numba templates": [
        ["tests/test_assignments.py", "-k", "numba"],
        ["tests/test_numba_backend.py", "-k", "builtin_rules_match_numpy and float64"],
        ["tests/test_numba_backend.py", "-k", "custom_rules_match_numpy and float64 or shared_weights_match_numpy"],
        # added after the first run, which left mutants of the compiled step program, the float32
        # tanh and the emitter's x ** 2 case alive
        ["tests/test_numba_backend.py", "-k", "a_term_of_two_unit_variables"],
        ["tests/test_engine_reuse.py", "-k", "float32_tanh or compiled_runs_equal_step_by_step"],
    ],
    "torch codegen": [
        ["tests/test_assignments.py", "-k", "torch"],
        ["tests/test_torch_backend.py", "-k", "builtin_rules_agree or expansion_equals"],
        # added after the first run, which left mutants of the population reductions alive
        ["tests/test_torch_backend.py", "-k", "feedback_stages_and_population_reductions or custom_rules_agree"],
        ["tests/test_torch_backend.py", "-k", "population_reductions_are_over_units"],
    ],
    "memory models": [
        ["tests/test_hopfield.py", "-k", "numpy or reference or energy or fast_path"],
        ["tests/test_storage.py"],
        ["tests/test_dense_modern.py", "-k", "numpy or reference"],
    ],
}
RULE_FILES = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "rules").glob("*.py") if path.name != "__init__.py")
NUMBA_TEMPLATE_FILES = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "plasticity" / "backends").glob("numba_*.py"))
NUMBA_EMITTER_FILES = ["plasticity/backends/numba_source.py", "plasticity/backends/numba_codegen.py"]
TORCH_FILES = ["plasticity/backends/torch_codegen.py"]
MEMORY_FILES = ["networks/hopfield.py", "networks/dense.py", "networks/memory_fast_paths.py"]
#: Package directories the editable install maps into ``plasticity``; the copy links them in place.
PACKAGE_LINKS = {"rules": "rules", "networks": "networks", "analysis": "analysis"}


@dataclass
class Mutant:
    area: str
    path: str
    start: int  # character offsets in the file of the text replaced
    end: int
    replacement: str
    line: int
    description: str
    status: str = ""
    seconds: float = 0.0
    failed: str = ""


# sites --------------------------------------------------------------------------------------------


def _offsets(text: str) -> list[int]:
    starts, total = [0], 0
    for line in text.splitlines(keepends=True):
        total += len(line)
        starts.append(total)
    return starts


def _span(node: ast.AST, starts: list[int]) -> tuple[int, int]:
    return starts[node.lineno - 1] + node.col_offset, starts[node.end_lineno - 1] + node.end_col_offset


_BINARY_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult}
_COMPARE_SWAPS = {
    ast.Lt: [ast.LtE, ast.Gt], ast.LtE: [ast.Lt, ast.GtE], ast.Gt: [ast.GtE, ast.Lt], ast.GtE: [ast.Gt, ast.LtE],
    ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq], ast.In: [ast.NotIn], ast.NotIn: [ast.In], ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
}
_OPERATOR_SWAPS = {"add": "sub", "sub": "add", "mul": "truediv", "truediv": "mul", "lt": "le", "le": "lt",
                   "gt": "ge", "ge": "gt", "eq": "ne", "ne": "eq", "pow": "mul"}


def _variants(node: ast.AST, *, equation: bool) -> list[tuple[ast.AST, str]]:
    """Mutated copies of ``node`` (alone, not its children), each with a description."""
    out = []
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_SWAPS:
        new = copy.deepcopy(node)
        new.op = _BINARY_SWAPS[type(node.op)]()
        out.append((new, f"{type(node.op).__name__} -> {type(new.op).__name__}"))
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE_SWAPS:
        for swap in _COMPARE_SWAPS[type(node.ops[0])]:
            new = copy.deepcopy(node)
            new.ops = [swap()]
            out.append((new, f"{type(node.ops[0]).__name__} -> {swap.__name__}"))
    elif isinstance(node, ast.BoolOp):
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        out.append((new, f"{type(node.op).__name__} -> {type(new.op).__name__}"))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        out.append((copy.deepcopy(node.operand), "unary minus dropped"))
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        out.append((ast.Constant(node.value + 1), f"constant {node.value!r} -> {node.value + 1!r}"))
    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "operator" \
            and node.attr in _OPERATOR_SWAPS:
        new = copy.deepcopy(node)
        new.attr = _OPERATOR_SWAPS[node.attr]
        out.append((new, f"operator.{node.attr} -> operator.{new.attr}"))
    elif not equation and isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
            and type(node.slice.value) is int:
        new = copy.deepcopy(node)
        new.slice = ast.Constant(node.slice.value + 1)
        out.append((new, f"index [{node.slice.value}] -> [{node.slice.value + 1}]"))
    if equation:
        if isinstance(node, ast.Name) and re.search(r"_(pre|post)$", node.id):
            other = re.sub(r"_(pre|post)$", lambda m: "_post" if m.group(1) == "pre" else "_pre", node.id)
            out.append((ast.Name(other), f"{node.id} -> {other}"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            swaps = {"sum_pre": "sum_post", "sum_post": "sum_pre"}
            if node.func.id in swaps:
                new = copy.deepcopy(node)
                new.func = ast.Name(swaps[node.func.id])
                out.append((new, f"{node.func.id} -> {swaps[node.func.id]}"))
            if node.func.id == "cumsum_post":
                out.append((copy.deepcopy(node.args[0]), "cumsum_post dropped"))
    return out


def _equation_mutants(equation: str) -> list[tuple[str, str]]:
    """(mutated equation, description) for every mutable node of an equation string."""
    tree = ast.parse(equation)
    (statement,) = tree.body
    out = []
    if isinstance(statement, ast.AugAssign):
        swaps = {ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.Mult: [ast.Add]}
        for swap in swaps.get(type(statement.op), []):
            new = copy.deepcopy(tree)
            new.body[0].op = swap()
            out.append((ast.unparse(new), f"{type(statement.op).__name__}= -> {swap.__name__}="))
    nodes = list(ast.walk(statement.value))
    for index, node in enumerate(nodes):
        for replacement, description in _variants(node, equation=True):
            new = copy.deepcopy(tree)
            target = list(ast.walk(new.body[0].value))[index]
            _replace(new, target, replacement)
            out.append((ast.unparse(new), description))
    return out


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list) and any(item is old for item in value):
                value[[id(item) for item in value].index(id(old))] = new
                return


def rule_sites(path: str) -> list[Mutant]:
    """Mutants of the equation strings of every ``Rule(...)`` in ``path``."""
    text = (ROOT / path).read_text()
    starts = _offsets(text)
    out = []
    for node in ast.walk(ast.parse(text)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Rule" and node.args):
            continue
        equations = node.args[0]
        if not isinstance(equations, (ast.List, ast.Tuple)):
            continue
        for element in equations.elts:
            if not (isinstance(element, ast.Constant) and isinstance(element.value, str)):
                continue
            start, end = _span(element, starts)
            for mutated, description in _equation_mutants(element.value):
                out.append(Mutant("rules", path, start, end, json.dumps(mutated), element.lineno,
                                  f"{element.value!r}: {description} ({mutated!r})"))
    return out


def _inside(node: ast.AST, kinds: tuple[type, ...], parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, kinds):
            return True
    return False



def _parsed(path: str) -> tuple[str, list[int], ast.Module, dict, set[int]]:
    """``path``'s text, line offsets, syntax tree, each node's parent and the ids of its docstrings."""
    text = (ROOT / path).read_text()
    tree = ast.parse(text)
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return text, _offsets(text), tree, parents, docstrings

def python_sites(area: str, path: str) -> list[Mutant]:
    """Mutants of the Python code of ``path``: operators, comparisons, constants, subscripts."""
    text, starts, tree, parents, docstrings = _parsed(path)
    out = []
    for node in ast.walk(tree):
        if id(node) in docstrings or not hasattr(node, "lineno"):
            continue
        # f-string parts have no positions of their own (Python < 3.12); annotations are not run
        if _inside(node, (ast.JoinedStr,), parents) or _inside(node, (ast.arg,), parents):
            continue
        if isinstance(parents.get(node), (ast.AnnAssign,)) and parents[node].annotation is node:
            continue
        for replacement, description in _variants(node, equation=False):
            start, end = _span(node, starts)
            out.append(Mutant(area, path, start, end, f"({ast.unparse(replacement)})", node.lineno,
                              f"{description}: {ast.get_source_segment(text, node)!r}"))
    return out


_TEMPLATE_TOKENS = re.compile(r"(?<= )(\+=|-=|\*=|<=|>=|\+|-|\*|/|<|>)(?= )|\[([a-z]\w*)\]")
_TEMPLATE_SWAPS = {"+=": "-=", "-=": "+=", "*=": "+=", "<=": "<", ">=": ">", "+": "-", "-": "+", "*": "/",
                   "/": "*", "<": "<=", ">": ">="}


def _literal_ranges(source: str, formatted: bool) -> list[tuple[int, int]]:
    """Ranges of ``source`` (a string literal) outside ``{...}`` replacement fields."""
    if not formatted:
        return [(0, len(source))]
    ranges, depth, begin, index = [], 0, 0, 0
    while index < len(source):
        char = source[index]
        if depth == 0 and source.startswith(("{{", "}}"), index):
            index += 2
            continue
        if char == "{":
            if depth == 0:
                ranges.append((begin, index))
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                begin = index + 1
        index += 1
    ranges.append((begin, len(source)))
    return ranges


def template_sites(area: str, path: str) -> list[Mutant]:
    """Mutants of generated source in string literals: operators, augmented assignments, comparisons
    and ``[name]`` indices to ``[name - 1]``. Docstrings, error messages and comments are left alone."""
    text, starts, tree, parents, docstrings = _parsed(path)
    out = []
    for node in ast.walk(tree):
        literal = isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str)
                                                       and not isinstance(parents.get(node), ast.JoinedStr))
        if not literal or id(node) in docstrings or _inside(node, (ast.Raise,), parents):
            continue
        if isinstance(parents.get(node), ast.Call) and getattr(parents[node].func, "id", "") in ("comment", "ConfigError"):
            continue
        start, end = _span(node, starts)
        source = text[start:end]
        for low, high in _literal_ranges(source, isinstance(node, ast.JoinedStr)):
            for match in _TEMPLATE_TOKENS.finditer(source, low, high):
                if match.group(1):
                    token = match.group(1)
                    replacement, at = _TEMPLATE_SWAPS[token], match.span(1)
                    description = f"generated {token!r} -> {replacement!r}"
                else:
                    name = match.group(2)
                    replacement, at = f"[{name} - 1]", match.span(0)
                    description = f"generated index [{name}] -> [{name} - 1]"
                context = source[max(low, at[0] - 30) : min(high, at[1] + 30)].replace("\n", " ")
                out.append(Mutant(area, path, start + at[0], start + at[1], replacement,
                                  node.lineno + source.count("\n", 0, at[0]), f"{description} in ...{context}..."))
    return out


def all_sites() -> dict[str, list[Mutant]]:
    sites = {"rules": [m for path in RULE_FILES for m in rule_sites(path)]}
    numba = [m for path in NUMBA_TEMPLATE_FILES for m in template_sites("numba templates", path)]
    numba += [m for path in NUMBA_EMITTER_FILES for m in python_sites("numba templates", path)]
    sites["numba templates"] = numba
    sites["torch codegen"] = [m for path in TORCH_FILES for m in python_sites("torch codegen", path)]
    sites["memory models"] = [m for path in MEMORY_FILES for m in python_sites("memory models", path)]
    return sites


# running ------------------------------------------------------------------------------------------


def make_copy(directory: Path) -> Path:
    """The tracked files of the working tree (as they are now) under ``directory``, importable as
    ``plasticity`` from there (PYTHONPATH comes before the editable install's finder)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    copy_root = directory / "tree"
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = copy_root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for link, folder in PACKAGE_LINKS.items():
        (copy_root / "plasticity" / link).symlink_to(copy_root / folder, target_is_directory=True)
    return copy_root


def run_tests(copy_root: Path, area: str, environment: dict, timeout: float,
              selections: list[list[str]] | None = None) -> tuple[str, str]:
    """``("killed", test)``, ``("survived", "")`` or ``("timeout", test)`` for the copy as it is, running
    the area's tests (or ``selections`` of them)."""
    deadline = time.monotonic() + timeout
    for selection in TESTS[area] if selections is None else selections:
        command = [sys.executable, "-m", "pytest", *selection, "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
        try:
            result = subprocess.run(command, cwd=copy_root, env=environment, capture_output=True, text=True,
                                    timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return "timeout", " ".join(selection)
        if result.returncode == 5:
            raise RuntimeError(f"no tests selected by {selection}")
        if result.returncode != 0:
            failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", result.stdout, re.M)
            return "killed", failed[0] if failed else f"{' '.join(selection)} (exit {result.returncode})"
    return "survived", ""


def importable(copy_root: Path, environment: dict, path: str) -> bool:
    """Whether the mutated module still imports (a rule the library refuses to build is invalid)."""
    module = path[:-3].replace("/", ".")
    if path.split("/")[0] in PACKAGE_LINKS:  # rules/, networks/, analysis/ are imported as plasticity's
        module = "plasticity." + module
    result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=copy_root, env=environment,
                            capture_output=True, text=True)
    return result.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--areas", nargs="*", default=list(TESTS), choices=list(TESTS))
    parser.add_argument("--per-area", type=int, default=60, help="mutants sampled per area (seeded)")
    parser.add_argument("--limit", nargs="*", default=[], help="AREA=N: a smaller sample for an area")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant's tests")
    parser.add_argument("--list", action="store_true", help="print the sampled mutants and stop")
    parser.add_argument("--recheck", action="store_true",
                        help="run the survivors of results/OUTPUT.json again (after adding tests) and update it")
    parser.add_argument("--output", default="mutation")
    parser.add_argument("--merge", nargs="*", default=[], metavar="NAME",
                        help="merge results/NAME.json files (runs of different areas) into results/OUTPUT.*")
    arguments = parser.parse_args()
    if arguments.merge:
        parts = [json.loads((RESULTS / f"{name}.json").read_text()) for name in arguments.merge]
        merged = {
            "command": "; ".join(part["command"] for part in parts),
            "machine": parts[0]["machine"],
            "date": max(part.get("rechecked", part["date"]) for part in parts),
            "seconds": sum(part["seconds"] for part in parts),
            **{key: {area: value for part in parts for area, value in part[key].items()}
               for key in ("baseline_seconds", "tests", "sites", "mutants")},
        }
        (RESULTS / f"{arguments.output}.json").write_text(json.dumps(merged, indent=1) + "\n")
        (RESULTS / f"{arguments.output}.md").write_text(markdown(merged))
        print(markdown(merged))
        return
    limits = {area: arguments.per_area for area in TESTS}
    limits.update({item.split("=")[0]: int(item.split("=")[1]) for item in arguments.limit})
    sites = all_sites()
    sampled = {}
    for area in arguments.areas:
        candidates = sites[area]
        sampled[area] = random.Random(f"{arguments.seed}:{area}").sample(candidates, min(limits[area], len(candidates)))
    previous, selections = None, {area: None for area in TESTS}
    if arguments.recheck:  # survivors passed the first run's selections: run only selections added since
        previous = json.loads((RESULTS / f"{arguments.output}.json").read_text())
        sampled = {area: [Mutant(**m) for m in mutants] for area, mutants in previous["mutants"].items()
                   if area in arguments.areas}
        added = {area: [sel for sel in TESTS[area] if " ".join(sel) not in previous["tests"][area]] for area in sampled}
        selections = {area: added[area] or None for area in sampled}  # no new selection: tests grew inside them
    if arguments.list:
        for area, mutants in sampled.items():
            print(f"{area}: {len(mutants)} of {len(sites[area])}")
            for mutant in mutants:
                print(f"  {mutant.path}:{mutant.line} {mutant.description}")
        return
    started = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # a kill restores the copy and removes it
    with tempfile.TemporaryDirectory(prefix="plasticity-mutation-") as directory:
        copy_root = make_copy(Path(directory))
        environment = {**os.environ, "PYTHONPATH": str(copy_root),
                       "PLASTICITY_CACHE_DIR": str(Path(tempfile.gettempdir()) / "plasticity-mutation-cache")}
        check = subprocess.run([sys.executable, "-c", "import plasticity.rules; print(plasticity.rules.__file__)"],
                               cwd=copy_root, env=environment, capture_output=True, text=True, check=True)
        if not check.stdout.strip().startswith(str(copy_root)):
            raise RuntimeError(f"the copy does not import as plasticity: {check.stdout!r}")
        baseline = {}
        for area in sampled:
            clock = time.monotonic()
            status, failed = run_tests(copy_root, area, environment, arguments.timeout * 3, selections[area])
            if status != "survived":
                raise RuntimeError(f"the unmutated tree fails the {area} tests: {failed}")
            baseline[area] = round(time.monotonic() - clock, 1)
            print(f"baseline {area}: passes in {baseline[area]} s", flush=True)
        for area, mutants in sampled.items():
            for number, mutant in enumerate(mutants, 1):
                if previous is not None and mutant.status not in ("survived", "timeout"):
                    continue
                before = mutant.status
                target = copy_root / mutant.path
                original = target.read_text()
                mutated = original[: mutant.start] + mutant.replacement + original[mutant.end :]
                clock = time.monotonic()
                try:
                    compile(mutated, mutant.path, "exec")
                except SyntaxError:
                    mutant.status = "invalid"
                else:
                    target.write_text(mutated)
                    try:
                        if not importable(copy_root, environment, mutant.path):
                            mutant.status = "invalid"
                        else:
                            mutant.status, mutant.failed = run_tests(copy_root, area, environment, arguments.timeout,
                                                                     selections[area])
                    finally:
                        target.write_text(original)
                if previous is not None and mutant.status == "killed":
                    mutant.failed = f"{mutant.failed} (by a test added after the first run)"
                elif previous is not None:  # passing the added tests alone says nothing of the first run's
                    mutant.status = before
                mutant.seconds = round(time.monotonic() - clock, 1)
                print(f"{area} {number}/{len(mutants)} {mutant.status:8} {mutant.seconds:6.1f}s "
                      f"{mutant.path}:{mutant.line} {mutant.description} {mutant.failed}", flush=True)
    if previous is not None:
        previous["mutants"].update({area: [asdict(m) for m in mutants] for area, mutants in sampled.items()})
        previous["rechecked"] = time.strftime("%Y-%m-%d")
        previous["tests"].update({area: [" ".join(selection) for selection in TESTS[area]] for area in sampled})
        report = previous
    else:
        report = {
            "command": "nice python benchmarks/mutation.py " + " ".join(sys.argv[1:]),
            "machine": f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} cores",
            "date": time.strftime("%Y-%m-%d"),
            "seed": arguments.seed,
            "seconds": round(time.monotonic() - started),
            "baseline_seconds": baseline,
            "tests": {area: [" ".join(selection) for selection in TESTS[area]] for area in sampled},
            "sites": {area: len(sites[area]) for area in sampled},
            "mutants": {area: [asdict(m) for m in mutants] for area, mutants in sampled.items()},
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{arguments.output}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{arguments.output}.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = [
        "# Mutation score",
        "",
        f"`{report['command']}` on {report['machine']}, {report['date']}, {report['seconds']} s. "
        "Killed: the area's tests fail (or time out); invalid mutants (a rule the library refuses to "
        "build, code that does not compile) are not counted.",
        "",
        "| area | sites | sampled | invalid | killed | timed out | survived | score (killed / valid) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for area, mutants in report["mutants"].items():
        counts = {status: sum(m["status"] == status for m in mutants) for status in ("invalid", "killed", "timeout", "survived")}
        valid = len(mutants) - counts["invalid"]
        killed = counts["killed"] + counts["timeout"]
        score = f"{killed}/{valid} = {killed / valid:.0%}" if valid else "-"
        lines.append(f"| {area} | {report['sites'][area]} | {len(mutants)} | {counts['invalid']} | {counts['killed']} | "
                     f"{counts['timeout']} | {counts['survived']} | {score} |")
    lines += ["", "Tests run per area (in order, each with `-x`):", ""]
    for area, selections in report["tests"].items():
        lines.append(f"- {area}: " + "; ".join(f"`{s}`" for s in selections))
    later = [(area, m) for area, mutants in report["mutants"].items() for m in mutants if "added after" in m["failed"]]
    if later:
        lines += ["", "Survivors of the first run killed by tests added since (`--recheck`):", ""]
        lines += [f"- {area}: `{m['path']}:{m['line']}` {m['description']}: {m['failed']}" for area, m in later]
    lines += ["", "## Survivors", ""]
    for area, mutants in report["mutants"].items():
        for m in mutants:
            if m["status"] == "survived":
                lines.append(f"- {area}: `{m['path']}:{m['line']}` {m['description']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
