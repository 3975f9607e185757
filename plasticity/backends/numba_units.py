"""Population kernels of the numba backend: the equations of a population stage as one kernel.

A stage's equations run in one loop over the units of each trial (threaded over trials from
:data:`~plasticity.backends.numba_source.PARALLEL_MIN_ELEMENTS` elements); consecutive equations
without reductions share the loop (each still sees the previous ones' results: they are
elementwise), and a unit's variables are held in locals across them. A reduction over the units
(``sum``, ``mean``, ``max``, ``min``, ``softmax``) ends the loop before it. The compiled step
programs of :mod:`plasticity.backends.numba_program` call :func:`population_kernel` with the
equations of several stages to fuse them into one loop.
"""

from __future__ import annotations

from plasticity.backends.numba_source import (
    PARALLEL_MIN_ELEMENTS,
    Emitter,
    KernelSpec,
    Lines,
    assign_statement,
    comment,
    kernel_source,
    reductions_under,
)
from plasticity.equations import Equation, Name, Node
from plasticity.network import Network

__all__ = ["population_kernel"]


def population_kernel(
    network: Network, name: str, stage: str, equations: list[Equation], function: str, trials: int, scalar: str
) -> tuple[KernelSpec, str]:
    """Kernel ``function`` running ``equations`` (of stage ``stage``, or several stages joined) of
    population ``name`` for ``trials`` trials with element type ``scalar`` (``"np.float32"``):
    what to pass it and its source."""
    population = network.populations[name]
    keys = [f"{name}.{var}" for var in [*population.variables, *sorted(network.summed[name])]]
    arrays = {key.split(".", 1)[1]: f"s{index}" for index, key in enumerate(keys)}
    params = list(population.params)
    emitter = Emitter(scalar)
    parallel = trials * population.n >= PARALLEL_MIN_ELEMENTS and trials > 1
    body = Lines()
    body.depth = 2
    pending: list[str] = []  # element statements of consecutive equations: one loop over the units
    # a unit's variables held in locals across the equations of one loop: each read from its array
    # once and stored when assigned (reading back what was just stored kept a fused pass from
    # running as fast as one written by hand)
    held: set[str] = set()

    def flush() -> None:
        if pending:
            body("for u in range(n):")
            body.indent()
            for line in pending:
                body(line)
            body.dedent()
            pending.clear()
            held.clear()

    def local(var: str) -> str:
        if var not in held:
            held.add(var)
            pending.append(f"v_{var} = {arrays[var]}[tr, u]")
        return f"v_{var}"

    for number, equation in enumerate(equations):
        names: dict[Node, str] = {}

        def lookup(node: Node, names=names, element: bool = False) -> str | None:
            if node in names:
                return names[node]
            if isinstance(node, Name):
                if node.kind == "param":
                    return f"p_{node.var}"
                if node.kind == "time":
                    return "tt"
                if node.kind == "dt":
                    return "dtt"
                return local(node.var) if element else f"{arrays[node.var]}[tr, u]"
            return None

        reductions = reductions_under(equation.expr)
        if reductions:  # they read every unit of the equations before: those loops end first
            flush()
            body(f"# {comment(equation.text)}")
        for index, reduce in enumerate(reductions):
            label = f"r{number}_{index}"
            argument = emitter.emit(reduce.arg, lookup)
            if reduce.func in ("sum", "mean"):
                body(f"{label} = 0.0")
                body("for u in range(n):")
                body.indent()(f"{label} += {argument}")
                body.dedent()
                if reduce.func == "mean":
                    body(f"{label} = {label} / n")
                names[reduce] = f"{scalar}({label})"
            elif reduce.func in ("max", "min"):
                body("u = 0")
                body(f"{label} = {argument}")
                body("for u in range(1, n):")
                body.indent()(f"{label} = {reduce.func}({label}, {argument})")
                body.dedent()
                names[reduce] = label
            else:  # softmax over units
                body("u = 0")
                body(f"{label}m = {argument}")
                body("for u in range(1, n):")
                body.indent()(f"{label}m = max({label}m, {argument})")
                body.dedent()
                body(f"{label}s = 0.0")
                body("for u in range(n):")
                body.indent()(f"{label}s += np.exp({argument} - {label}m)")
                body.dedent()
                body(f"{label}s = {scalar}({label}s)")
                names[reduce] = f"(np.exp({argument} - {label}m) / {label}s)"
        pending.append(f"# {comment(equation.text)}")
        value = emitter.emit(equation.expr, lambda node, names=names: lookup(node, names, element=True))
        target = local(equation.var) if equation.op != "=" else f"v_{equation.var}"
        pending.append(assign_statement(target, equation.op, value))
        held.add(equation.var)
        pending.append(f"{arrays[equation.var]}[tr, u] = v_{equation.var}")
    flush()
    lines = Lines()
    lines.indent()
    lines(f"tt = {scalar}(time)")
    lines(f"dtt = {scalar}(dt)")
    for index, param in enumerate(params):
        if not param.isidentifier():
            continue  # no equation can name it
        lines(f"d_{param} = prm[{index}]")
        lines(f"p_{param} = {scalar}(d_{param})")
    for line in emitter.constant_lines():
        lines(line)
    lines(f"trials, n = {arrays[population.variables[0]] if population.variables else 's0'}.shape")
    lines("for tr in numba.prange(trials):")
    arguments = ["time", "dt", "prm", *arrays.values()]
    text = f"# population {name}, stage {comment(stage)!r}\n" + kernel_source(function, arguments, lines.text() + body.text(), parallel)
    return KernelSpec(function, keys, [population.params[p] for p in params], parallel=parallel), text
