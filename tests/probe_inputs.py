"""Probe: every input is a clear project error or a run that every backend computes alike.

Reruns the equation, backend and validation findings of issue 19 as checks, then fuzzes:

* ``--strings`` equation strings (default 100,000) through construction, each as a population
  equation and as a rule equation in a small network: valid equations drawn like
  ``equation_strategies`` draws them, mutations of those (characters deleted, inserted,
  duplicated, replaced by look-alikes), token soup, arbitrary text and expressions at and past
  the parser's limits. Every outcome must be an accepted network, an ``EquationError`` or a
  ``ConfigError``; anything else is a finding.
* ``--runs`` of the accepted ones (default 1,000, the valid-drawn first) through a short run
  (3 steps, 2 trials, float64) on numpy, numba and torch: every backend must agree with numpy
  (``equation_strategies.RTOL``) or stop with the same ``DivergenceError``.

Writes ``benchmarks/results/probe.json`` and ``probe.md``. Run from the repository root::

    PLASTICITY_CACHE_DIR=/tmp/probe-kernels .venv/bin/python tests/probe_inputs.py

(a separate kernel cache: the runs compile a thousand networks' kernels once).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import subprocess
import sys
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import plasticity as pl  # noqa: E402
from plasticity.backends import available_backends  # noqa: E402
from plasticity.equations.parser import MAX_DEPTH, MAX_NODES  # noqa: E402
from plasticity.equations.tree import ELEMENTWISE_FUNCTIONS, POPULATION_REDUCTIONS  # noqa: E402
from plasticity.protocols import list_protocols  # noqa: E402
from plasticity.simulation import CHECK_EVERY  # noqa: E402

from equation_strategies import RTOL, compare_outcomes  # noqa: E402

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
BACKENDS = [name for name in ("numpy", "numba", "torch") if name in available_backends()]


# the findings, rerun ----------------------------------------------------------------------


def _outcome(make: Callable[[], Any]) -> str:
    try:
        make()
    except (pl.EquationError, pl.ConfigError, pl.DivergenceError) as error:
        message = error.reason if isinstance(error, pl.EquationError) else str(error)
        return f"{type(error).__name__}: {message.splitlines()[0][:200]}"
    except Exception as error:  # a finding: not a project error
        return f"RAW {type(error).__name__}: {error}"
    return "accepted"


def _side_sum(backend: str) -> np.ndarray:
    pre = pl.Population(3, init={"x": 0.0}, name="pre")
    post = pl.Population(5, ["y = I"], name="post")
    rule = pl.Rule(["theta_post -= sum_post(y_post)"])
    network = pl.Network([pre, post], [pl.Projection(pre, post, rule, source="x", init={"w": 0.1}, name="p")])
    simulation = pl.Simulation(network, backend=backend, trials=2, dtype="float64")
    simulation.set("pre.x", np.arange(6.0).reshape(2, 3))
    simulation.advance(1)
    return simulation.get("p.theta_post")


def _blow_up(backend: str) -> str:
    source = pl.Population(2, init={"u": 0.1}, name="u")
    population = pl.Population(3, ["y = where(t >= 10, log(t - t) * x, y + 0.001 * I)", "x = 0.5"],
                               init={"y": 0.0, "x": 0.0}, name="p")
    network = pl.Network([source, population], [pl.Projection(source, population, None, name="w")])
    simulation = pl.Simulation(network, backend=backend, trials=2, dtype="float64")
    try:
        simulation.advance(20000)
    except pl.DivergenceError as error:
        bounded = error.last_finite < 10 <= error.step <= error.last_finite + CHECK_EVERY
        return f"stopped at step {simulation.steps_done} ({'bounded' if bounded else 'NOT bounded'}): {error}"
    return "NOT stopped"


def _protocol_probes() -> Counter:
    counts: Counter = Counter()
    for name, proto in list_protocols().items():
        for parameter in proto.defaults:
            for value in ("1", math.nan, -1, 1e300, 10**18):
                outcome = _outcome(lambda: proto.validate({parameter: value}))
                counts["accepted" if outcome == "accepted" else outcome.split(":")[0]] += 1
    return counts


def _blas_fallbacks() -> dict[str, str]:
    import test_blas_fallback as fallback

    cases = {"no libtorch_cpu": fallback._NO_TORCH_LIBRARY, "MKL symbol missing": fallback._MKL_SYMBOL_MISSING,
             "numba _launch_threads missing": fallback._NUMBA_LAUNCH_MISSING,
             "numba threading symbol missing": fallback._THREADING_SYMBOLS_MISSING,
             "numba _iget_num_threads missing": fallback._NUMBA_PRIVATE_READ_MISSING}
    results = {}
    for case, patch in cases.items():
        try:
            outcome = fallback._probe(patch)
            results[case] = (f"imports; {len(outcome['warnings'])} warning(s); BLAS {outcome['blas'].split(' (')[0][:40]}; "
                             f"numba - numpy {outcome['difference']:.1e}")
        except (AssertionError, subprocess.SubprocessError) as error:
            results[case] = f"FAILED: {str(error)[:200]}"
    return results


def findings() -> dict[str, Any]:
    checks: dict[str, Any] = {}
    checks["sum_post(y_post), 3 pre, 5 post"] = {
        backend: _outcome(lambda backend=backend: _side_sum(backend)) for backend in BACKENDS}
    values = [_side_sum(backend) for backend in BACKENDS]
    checks["sum_post(y_post) equal on every backend"] = all(np.allclose(v, values[0], rtol=1e-12) for v in values)
    rule = lambda text: pl.Rule([text])  # noqa: E731
    for label, text in [("400 unary minuses", "w += " + "-" * 400 + "x_pre"),
                        ("330-term sum", "w += " + "+".join(["x_pre"] * 330)),
                        ("1e400", "w += 1e400 * x_pre"), ("1 and 1,900 zeros", "w += 1" + "0" * 1900),
                        ("180 nested tanh", "w += " + "tanh(" * 180 + "x_pre" + ")" * 180),
                        ("fullwidth x_pre", "w += \uff58_pre"), ("fi ligature", "w += \ufb01_pre")]:
        checks[label] = _outcome(lambda text=text: rule(text))
    checks["protocol parameters: string, NaN, -1, 1e300, 1e18"] = dict(_protocol_probes())
    network = lambda: pl.Network([pl.Population(2, ["y = 0.5 * y"], init={"y": 1.0}, name="a")])  # noqa: E731
    for label, make in [("Simulation(seed=-1)", lambda: pl.Simulation(network(), seed=-1)),
                        ("Simulation(dt=nan)", lambda: pl.Simulation(network(), dt=math.nan)),
                        ("Population(n=2.5)", lambda: pl.Population(2.5)),
                        ("hopfield.capacity load = nan", lambda: list_protocols()["hopfield.capacity"].validate({"load": math.nan})),
                        ("pca eta = '0.1'", lambda: list_protocols()["pca"].validate({"eta": "0.1"}))]:
        checks[label] = _outcome(make)
    checks["blow-up at step 10 of 20,000, not recording"] = {backend: _blow_up(backend) for backend in BACKENDS}
    checks["BLAS pieces missing"] = _blas_fallbacks()
    return checks


# the fuzz ---------------------------------------------------------------------------------------

_CONSTANTS = ["0.5", "1.5", "0.25", "2", "0.75", "1.25", "3"]
_DISCONTINUOUS = ("sign", "heaviside")
_FUNCTIONS = [f for f in ELEMENTWISE_FUNCTIONS if f not in ("where", *_DISCONTINUOUS)]
_TOKENS = ["w", "x_pre", "y_post", "I_post", "theta_post", "a_pre", "e", "eta", "m", "t", "dt", "I", "y", "z", "beta",
           "+", "-", "*", "/", "**", "(", ")", ",", "<", "==", ">=", "where", "exp", "log", "sum_post", "cumsum_post",
           "sum_pre", "sum", "mean", "max", "softmax", "1", "2.5", "1e400", "1e38", " ", "=", "+=", "*=", ".", "[", "]",
           "lambda", ":", "__x", "import", "clip", "tanh", "if", "else", "and", "\uff58", "\u00e9", "#", "'a'", "1j", "0x1"]
_LOOKALIKES = {"x": "\uff58", "f": "\ufb01", "a": "\u0430", "e": "\u0435", "-": "\u2212", "*": "\u2217", "1": "\uff11"}

_SYNAPSE_NAMES = {frozenset(): ["eta", "dt", "t", "m"], frozenset({"post"}): ["y_post", "I_post"],
                  frozenset({"pre"}): ["x_pre"], frozenset({"pre", "post"}): ["w"]}
_UNIT_NAMES = {frozenset(): ["beta", "dt", "t"], frozenset({"unit"}): ["I", "y", "z"]}


class Generator:
    """Random equation strings (the same families as ``equation_strategies``, plus broken ones)."""

    def __init__(self, seed: int):
        self.random = random.Random(seed)

    def pick(self, options):
        return options[self.random.randrange(len(options))]

    def expression(self, domain: frozenset, names: dict, synapse: bool, depth: int, reductions=True, running=False) -> str:
        leaves = [n for allowed, group in names.items() if allowed <= domain for n in group] + _CONSTANTS
        if depth == 0 or self.random.random() < 0.25:
            return self.pick(leaves)
        sub = lambda within=domain, **kw: self.expression(within, names, synapse, depth - 1,  # noqa: E731
                                                          kw.get("reductions", reductions), kw.get("running", running))
        kind = self.pick(["unary", "binary", "binary", "divide", "function", "where", "discontinuous"]
                         + (["reduce", "reduce"] if reductions else []))
        if kind == "unary":
            return f"-({sub()})"
        if kind == "binary":
            return f"({sub()}) {self.pick(['+', '-', '*', '**'])} ({sub()})"
        if kind == "divide":
            return f"({sub()}) / (({sub()}) ** 2 + {self.pick(_CONSTANTS)})"
        if kind == "function":
            name = self.pick(_FUNCTIONS)
            return f"{name}({', '.join(sub() for _ in range(ELEMENTWISE_FUNCTIONS[name]))})"
        if kind == "where":
            return f"where({sub()} {self.pick(['<', '<=', '>', '>=', '==', '!='])} ({sub()}) + {self.pick(_CONSTANTS)}, {sub()}, {sub()})"
        if kind == "discontinuous":
            return f"{self.pick(_DISCONTINUOUS)}(({sub()}) - {self.pick(_CONSTANTS)})"
        if not synapse:
            func = self.pick(list(POPULATION_REDUCTIONS))
            if func == "softmax" and "unit" not in domain:
                func = "sum"
            return f"{func}(({sub(frozenset({'unit'}))}) * {self.pick(['I', 'y', 'z'])})"
        func = self.pick(["sum_post", "sum_pre"] + (["cumsum_post"] if running and "pre" in domain else []))
        axis = "pre" if func == "sum_pre" else "post"
        within = domain | {axis} if func != "cumsum_post" else domain
        return f"{func}(({sub(within, reductions=False, running=False)}) * {self.pick(names[frozenset({axis})])})"

    def valid_rule(self) -> str:
        target, domain = self.pick([("w", {"pre", "post"}), ("e", {"pre", "post"}), ("theta_post", {"post"}), ("a_pre", {"pre"})])
        names = {key: list(group) for key, group in _SYNAPSE_NAMES.items()}
        if target != "w":
            names[frozenset({"pre", "post"} if target == "e" else {target.split("_")[1]})].append(target)
        body = self.expression(frozenset(domain), names, True, self.random.randint(0, 4), running=target in ("w", "e"))
        return f"{target} {self.pick(['=', '+=', '-=', '*='])} {body}"

    def valid_population(self) -> str:
        body = self.expression(frozenset({"unit"}), _UNIT_NAMES, False, self.random.randint(0, 4))
        return f"{self.pick(['y', 'z'])} {self.pick(['=', '+=', '-=', '*='])} {body}"

    def mutated(self) -> str:
        text = list(self.valid_rule() if self.random.random() < 0.5 else self.valid_population())
        for _ in range(self.random.randint(1, 3)):
            where = self.random.randrange(len(text) + 1)
            edit = self.random.randrange(4)
            if edit == 0 and text:
                del text[min(where, len(text) - 1)]
            elif edit == 1:
                text.insert(where, self.pick(_TOKENS))
            elif edit == 2 and text:
                start = self.random.randrange(len(text))
                text[where:where] = text[start:start + self.random.randint(1, 8)]
            else:
                lookalike = [i for i, c in enumerate(text) if c in _LOOKALIKES]
                if lookalike:
                    index = self.pick(lookalike)
                    text[index] = _LOOKALIKES[text[index]]
        return "".join(text)

    def soup(self) -> str:
        prefix = self.pick(["", "w = ", "w += ", "y = ", "theta_post -= "])
        return prefix + "".join(self.pick(_TOKENS) for _ in range(self.random.randint(0, 25)))

    def text(self) -> str:
        alphabet = [chr(self.random.randrange(32, 127)) for _ in range(20)] + ["\u00e9", "\uff58", "\n", "\t", "\x00"]
        return "".join(self.pick(alphabet) for _ in range(self.random.randint(0, 60)))

    def limits(self) -> str:
        k = self.random.randint(1, 2 * max(MAX_DEPTH, MAX_NODES))
        target = self.pick(["w += ", "y = "])
        leaf = "x_pre" if target == "w += " else "I"
        return target + self.pick([
            "-" * k + leaf, "+".join([leaf] * k), "tanh(" * k + leaf + ")" * k, "(" * k + leaf + ")" * k,
            f"{leaf} * 1{'0' * k}", f"{leaf} * 1e{k}",
        ])

    def draw(self) -> tuple[str, str]:
        family = self.pick(["valid_rule", "valid_rule", "valid_population", "valid_population", "mutated", "mutated",
                            "mutated", "soup", "text", "limits"])
        return family, getattr(self, family)()


def rule_network(text: str) -> pl.Network:
    pre = pl.Population(3, init={"x": pl.init.uniform(-1.0, 1.0)}, name="pre")
    post = pl.Population(4, ["y = tanh(I)"], name="post")
    rule = pl.Rule([text], params={"eta": 0.05}, modulators=("m",))
    return pl.Network([pre, post], [pl.Projection(pre, post, rule, source="x", init={"w": pl.init.uniform(-0.5, 0.5)}, name="proj")])


def population_network(text: str) -> pl.Network:
    pre = pl.Population(3, init={"x": pl.init.uniform(-1.0, 1.0)}, name="pre")
    post = pl.Population(4, [text], init={"y": pl.init.uniform(-1.0, 1.0), "z": pl.init.uniform(0.0, 1.0)},
                         params={"beta": 0.7}, name="post")
    return pl.Network([pre, post], [pl.Projection(pre, post, None, source="x", init={"w": pl.init.uniform(-0.5, 0.5)}, name="proj")])


_BUILDERS = {"rule": rule_network, "population": population_network}


def construct(strings: int, seed: int) -> tuple[Counter, list[dict], list[tuple[str, str, str]]]:
    generator = Generator(seed)
    counts: Counter = Counter()
    findings_: list[dict] = []
    accepted: list[tuple[str, str, str]] = []
    for _ in range(strings):
        family, text = generator.draw()
        for context, build in _BUILDERS.items():
            try:
                build(text)
            except (pl.EquationError, pl.ConfigError) as error:
                counts[f"{context}: {type(error).__name__}"] += 1
                continue
            except Exception as error:  # a finding
                counts[f"{context}: RAW {type(error).__name__}"] += 1
                findings_.append({"text": text, "context": context, "error": f"{type(error).__name__}: {error}"})
                continue
            counts[f"{context}: accepted"] += 1
            accepted.append((family, context, text))
    return counts, findings_, accepted


class _Single:
    """A one-equation network in the shape ``equation_strategies.run_everywhere`` expects."""

    def __init__(self, context: str, text: str):
        self.context, self.text = context, text

    def network(self) -> pl.Network:
        return _BUILDERS[self.context](self.text)


def run_accepted(accepted: list[tuple[str, str, str]], runs: int, seed: int) -> tuple[Counter, list[dict]]:
    chooser = random.Random(seed)
    valid = [item for item in accepted if item[0].startswith("valid")]
    other = [item for item in accepted if not item[0].startswith("valid")]
    chooser.shuffle(valid)
    chooser.shuffle(other)
    chosen = (valid[: runs * 4 // 5] + other)[:runs]
    counts: Counter = Counter()
    problems: list[dict] = []
    for index, (family, context, text) in enumerate(chosen):
        outcomes = {}
        try:
            for backend in BACKENDS:
                simulation = pl.Simulation(_Single(context, text).network(), backend=backend, trials=2, dtype="float64", seed=index)
                if context == "rule":
                    simulation.set("proj.m", np.array([0.3, 0.8]))
                try:
                    outcomes[backend] = simulation.run(3, record=dict.fromkeys(simulation.shapes, 1))
                except pl.DivergenceError as error:
                    outcomes[backend] = error
        except Exception as error:  # a finding: a raw error while running
            counts["RAW error while running"] += 1
            problems.append({"text": text, "context": context, "error": traceback.format_exception_only(error)[-1].strip()})
            continue
        differences = compare_outcomes(outcomes)
        if differences:
            counts["backends disagree"] += 1
            problems.append({"text": text, "context": context, "error": differences})
        elif isinstance(outcomes["numpy"], pl.DivergenceError):
            counts["every backend diverged alike"] += 1
        else:
            counts["every backend computed alike"] += 1
        if (index + 1) % 50 == 0:
            print(f"  {index + 1} runs: {dict(counts)}", flush=True)
    return counts, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strings", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="probe")
    arguments = parser.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # numpy's evaluation of scalar log(0) and the like
    started = time.perf_counter()
    checks = findings()
    print(json.dumps(checks, indent=1), flush=True)
    clock = time.perf_counter()
    counts, raw, accepted = construct(arguments.strings, arguments.seed)
    construction_seconds = time.perf_counter() - clock
    print(f"construction: {dict(counts)} in {construction_seconds:.0f} s", flush=True)
    clock = time.perf_counter()
    run_counts, problems = run_accepted(accepted, arguments.runs, arguments.seed)
    run_seconds = time.perf_counter() - clock
    report = {
        "command": f"python tests/probe_inputs.py --strings {arguments.strings} --runs {arguments.runs} --seed {arguments.seed}",
        "machine": f"{platform.platform()}, Python {platform.python_version()}",
        "backends": BACKENDS,
        "findings": checks,
        "construction": {"strings": arguments.strings, "outcomes": dict(sorted(counts.items())),
                         "raw_errors": raw[:50], "seconds": round(construction_seconds)},
        "runs": {"runs": sum(run_counts.values()), "outcomes": dict(sorted(run_counts.items())), "problems": problems[:50],
                 "tolerance": f"max |backend - numpy| <= {RTOL:g} x max(1, max |numpy|), float64, 3 steps, 2 trials",
                 "seconds": round(run_seconds)},
        "seconds": round(time.perf_counter() - started),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{arguments.output}.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (RESULTS / f"{arguments.output}.md").write_text(_markdown(report))
    print(_markdown(report))


def _markdown(report: dict) -> str:
    lines = ["# Probe of bad inputs", "", f"`{report['command']}` on {report['machine']}; backends "
             f"{', '.join(report['backends'])}; {report['seconds']} s.", "", "## The issue's findings, rerun", "",
             "| input | outcome |", "|---|---|"]
    for label, outcome in report["findings"].items():
        if isinstance(outcome, dict):
            for key, value in outcome.items():
                lines.append(f"| {label}: {key} | {str(value).replace('|', '/')} |")
        else:
            lines.append(f"| {label} | {str(outcome).replace('|', '/')} |")
    construction = report["construction"]
    lines += ["", f"## {construction['strings']:,} strings through construction (as a population and as a rule equation)", "",
              "| outcome | count |", "|---|---|"]
    lines += [f"| {key} | {value:,} |" for key, value in construction["outcomes"].items()]
    lines.append(f"\nErrors that are not EquationError or ConfigError: {len(construction['raw_errors'])}.")
    runs = report["runs"]
    lines += ["", f"## {runs['runs']:,} accepted equations through a short run on every backend", "",
              f"Tolerance: {runs['tolerance']}.", "", "| outcome | count |", "|---|---|"]
    lines += [f"| {key} | {value:,} |" for key, value in runs["outcomes"].items()]
    if runs["problems"]:
        lines += ["", "Problems (first 50):", ""] + [f"- `{p['context']}: {p['text']}`: {p['error']}" for p in runs["problems"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
