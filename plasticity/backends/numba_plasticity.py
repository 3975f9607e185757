"""Plasticity kernels of the numba backend: a projection's rule as one generated kernel.

Every equation of the rule in order, one pass (or a few) each:

* work is hoisted by domain: terms that vary over post units only are computed once
  per row, terms over pre units only once per pre unit into an O(N) buffer, scalars
  once per call; only terms over both run in the inner loop;
* sums (reductions, the fused drive) accumulate in float64 (inner loops run over blocks of
  1024 columns through views indexed from 0, which LLVM vectorises; a block's sum is the
  dtype's vector partial sums, added into the float64 total once per block);
* ``sum_pre`` of a synapse term is a loop over the row just before the row is updated (it is
  in cache), ``sum_post`` a column pass before the equation, ``cumsum_post`` a running carry
  that makes rows go in order (the pass is then parallel over trials and chunks of columns,
  or over trials only when a row needs all its columns);
* the pass that writes ``w`` last can accumulate ``sum_j w_new[i, j] * xn[j]``, the
  drive of the next step (``fuse=True``), so a step reads and writes each weight once;
* with weights per trial, the same pass can also mark in ``changed[t]`` each trial
  whose weights it changed (``count=True``: any new weight differs from the old, NaN counting as
  a change), where a count of updates per step would otherwise compare every weight with a copy
  made before the step (a presented data set's updates, :mod:`~plasticity.backends.numba_program`);
* shared weights (a minibatch): the update averaged over trials, in one loop over
  (row, trial, column) into a float64 row total, or, for increments that are sums of separable
  terms ``scalar * f(post) * g(pre) * w**k`` (``k`` 0 or 1; :func:`separable_terms`, on the
  algebra of :mod:`plasticity.equations.separable`), as row/column scalings and the BLAS
  product of two factor matrices (post x trials, trials x pre) added to ``w`` by the BLAS call
  itself (:func:`~plasticity.backends.blas.gemm` with ``beta = 1``); a factor that is one unit
  variable is its state array (the post one transposed, a view), its scalars folded into the
  product's alpha.
"""

from __future__ import annotations

from dataclasses import dataclass

from plasticity.backends.numba_source import (
    PARALLEL_MIN_ELEMENTS,
    Emitter,
    KernelSpec,
    Lines,
    assign_statement,
    comment,
    contains,
    kernel_source,
    is_pure,
    pure_lookup,
    reductions_under,
)
from plasticity.equations import Binary, Const, Equation, Name, Node, Reduce
from plasticity.equations.separable import expand
from plasticity.network import Network

__all__ = ["COLUMN_CHUNK", "TRANSPOSE_TILE", "plasticity_kernel", "separable_terms", "SeparableUpdate"]

#: Columns per task of a column pass (``sum_post``).
COLUMN_CHUNK = 512
#: Trials per tile of the transposing loop that writes a separable update's post factors.
TRANSPOSE_TILE = 16

_POST = frozenset({"post"})
_PRE = frozenset({"pre"})


def plasticity_kernel(network: Network, name: str, function: str, trials: int, scalar: str) -> tuple[KernelSpec, str]:
    """Kernel ``function`` running the rule of projection ``name`` for ``trials`` trials with element
    type ``scalar`` (``"np.float32"``): what to pass it and its source."""
    return _PlasticityWriter(network, name, trials, scalar).kernel(function)


def _multiplied(factors: tuple[Node, ...]) -> list[Node]:
    """The operands of the products ``factors`` multiply, products taken apart."""
    operands: list[Node] = []
    for factor in factors:
        if isinstance(factor, Binary) and factor.op == "*":
            operands += _multiplied((factor.left, factor.right))
        else:
            operands.append(factor)
    return operands


def _single_unit_factor(factors: tuple[Node, ...], kind: str) -> tuple[Name, list[Node]] | None:
    """When ``factors`` multiply one unit variable of kind ``kind`` (``"pre"``, ``"post"``) by pure
    scalars: that variable and the scalars; else None."""
    operands = _multiplied(factors)
    units = [f for f in operands if not is_pure(f)]
    if len(units) == 1 and isinstance(units[0], Name) and units[0].kind == kind:
        return units[0], [f for f in operands if f is not units[0]]
    return None


class _BlockViews:
    """Column blocks of a row: every array read at column ``j`` is read through a view that
    starts at the block (``X[t, i, j0:j1]``), indexed from 0, so the inner loop is a plain
    contiguous loop that LLVM vectorises (absolute indices from a non-zero start are not);
    values per row (``X[t, i]``) become locals once per row. Sums over a block are the
    dtype's vector partial sums, added into float64 once per block."""

    SIZE = 1024

    def __init__(self, number: int | str, lines: Lines, scalar: str, deferred: bool = False):
        self.number = number
        self.lines = lines
        self.scalar = scalar
        self.deferred = deferred  # row locals defined with the views (they depend on the trial)
        self.views: dict[str, tuple[str, str]] = {}  # "X[t, j]" -> ("label[j]", "label = X[t, j0:j1]")
        self.locals: dict[str, str] = {}

    def view(self, reference: str) -> str:
        """``X[..., j]`` as a block view, or ``X[t, i]`` as a row local."""
        if reference.endswith(", j]"):
            if reference not in self.views:
                label = f"v{self.number}_{len(self.views)}"
                self.views[reference] = (f"{label}[j]", f"{label} = {reference[:-2]}j0:j1]")
            return self.views[reference][0]
        if reference not in self.locals:
            label = f"u{self.number}_{len(self.locals)}"
            self.locals[reference] = label
            if not self.deferred:
                self.lines(f"{label} = {reference}")
        return self.locals[reference]

    def definitions(self) -> list[str]:
        """Lines defining the views (and deferred locals) of the current block."""
        lines = [definition for _, definition in self.views.values()]
        if self.deferred:
            lines += [f"{label} = {reference}" for reference, label in self.locals.items()]
        return lines

    def lookup(self, inner):
        cast = f"{self.scalar}("

        def lookup(node: Node) -> str | None:
            found = inner(node)
            if found is None:
                return None
            if found.startswith(cast) and found.endswith(", j])"):  # a column reduction
                return f"{cast}{self.view(found[len(cast) : -1])})"
            if "(" in found or not found.endswith((", j]", "[t, i]")):
                return found
            return self.view(found)

        return lookup

    def open(self, start: str, stop: str, extra: list[str] = ()) -> None:
        self.lines(f"for j0 in range({start}, {stop}, {self.SIZE}):")
        self.lines.indent()(f"j1 = min(j0 + {self.SIZE}, {stop})")
        for line in self.definitions():
            self.lines(line)
        for line in extra:
            self.lines(line)

    def close(self) -> None:
        self.lines.dedent()


class _PlasticityWriter:
    """The plasticity kernel of one projection: one pass (or a few) per equation."""

    def __init__(self, network: Network, name: str, trials: int, scalar: str):
        self.network = network
        self.name = name
        self.projection = network.projections[name]
        self.rule = self.projection.rule
        self.scalar = scalar
        self.shared = self.projection.shared
        self.emitter = Emitter(scalar)
        self.keys: list[str] = []
        self.buffers: list[tuple[str, tuple[str, ...], str]] = []
        self.trials = trials
        size = trials * self.projection.post.n * self.projection.pre.n
        self.parallel = size >= PARALLEL_MIN_ELEMENTS
        self.lines = Lines()
        self.scalars: list[str] = []  # pure scalar subexpressions, computed at the top

    # names -----------------------------------------------------------------------------
    def array(self, key: str) -> str:
        if key not in self.keys:
            self.keys.append(key)
        return f"s{self.keys.index(key)}"

    def buffer(self, shape: tuple[str, ...], dtype: str = "float64") -> str:
        name = f"b{len(self.buffers)}"
        self.buffers.append((name, shape, dtype))
        return name

    def side_key(self, node: Name) -> str:
        population = self.projection.pre if node.kind == "pre" else self.projection.post
        owned = {eq.var for eq in self.rule.parsed if eq.level == node.kind}
        if node.var in owned:
            return f"{self.name}.{node.name}"
        return f"{population.name}.{node.var}"

    def name_lookup(self, node: Node, *, t: str = "t") -> str | None:
        if not isinstance(node, Name):
            return None
        if node.kind == "param":
            return f"p_{node.var}"
        if node.kind == "time":
            return "tt"
        if node.kind == "dt":
            return "dtt"
        if node.kind == "global":
            return f"{self.array(f'{self.name}.{node.var}')}[{t}]"
        if node.kind == "pre":
            return f"{self.array(self.side_key(node))}[{t}, j]"
        if node.kind == "post":
            return f"{self.array(self.side_key(node))}[{t}, i]"
        weights = self.array(f"{self.name}.{node.var}")
        return f"{weights}[i, j]" if self.shared else f"{weights}[{t}, i, j]"

    # the kernels -----------------------------------------------------------------------
    def kernel(self, function: str) -> tuple[KernelSpec, str]:
        """The function ``function``: every equation of the rule in order, one pass (or a few) each."""
        parsed = self.rule.parsed
        w_equations = [k for k, eq in enumerate(parsed) if eq.level == "synapse" and eq.var == "w"]
        # the last pass that writes w fuses the next drive and, comparing each new weight with the
        # old one, marks the trials whose weights the step changed
        fuse_at = w_equations[-1] if w_equations and not self.shared else None
        self.lines = Lines()
        self.lines.depth = 1
        body = self.lines.lines
        for number, equation in enumerate(parsed):
            self.lines(f"# {self.name}: {comment(equation.text)}")
            update = separable_terms(equation) if self.shared and equation.level == "synapse" else None
            if update is not None:
                self.separable_update(equation, update)
            elif equation.level == "synapse":
                self.synapse_equation(number, equation, fused=number == fuse_at)
            else:
                self.side_equation(number, equation)
        head = Lines()
        arguments = ["time", "dt", "prm", "trials", "npost", "npre", "fuse", "xn", "drive", "count", "changed"]
        arguments += [f"s{k}" for k in range(len(self.keys))] + [name for name, _, _ in self.buffers]
        head.indent()
        head(f"tt = {self.scalar}(time)")
        head(f"dtt = {self.scalar}(dt)")
        for index, param in enumerate(self.rule.params):
            if not param.isidentifier():
                continue  # no equation can name it
            head(f"d_{param} = prm[{index}]")
            head(f"p_{param} = {self.scalar}(d_{param})")
        head(f"per_trial = prm[{len(self.rule.params)}]")
        for line in self.emitter.constant_lines() + self.scalars:
            head(line)
        parallel = self.parallel and any("numba.prange" in line for line in body)
        text = kernel_source(function, arguments, head.text() + "\n".join(body) + "\n", parallel)
        spec = KernelSpec(
            function,
            list(self.keys),
            [*self.rule.params.values(), 1.0 / self.trials],
            list(self.buffers),
            fusable=fuse_at is not None,
            counts=fuse_at is not None,
            parallel=parallel,
        )
        return spec, text

    def array_mask(self) -> str:
        return self.array(f"{self.name}.__mask__")

    # separable updates of shared weights ---------------------------------------------------
    def term(self, coefficient: float, factors: tuple[Node, ...]) -> str:
        """``coefficient * product(factors)`` in the state's dtype; the coefficient and the pure scalar
        factors multiply in float64 first, as Python floats do in the reference."""
        pure = [self.emitter.emit(f, pure_lookup) for f in factors if is_pure(f)]
        scalar = f"{self.scalar}({' * '.join([repr(coefficient), *pure])})"
        return " * ".join([scalar, *(self.emitter.emit(f, self.name_lookup) for f in factors if not is_pure(f))])

    def separable_update(self, equation: Equation, update: SeparableUpdate) -> None:
        """``w_new = w * (base + rows[i] + columns[j]) + (step / trials) * L R`` (see
        :class:`SeparableUpdate`): the scales as trial means in float64, the outer terms as
        factor matrices ``L`` (post, terms x trials) and ``R`` (terms x trials, pre) in the state's
        dtype (a single term's unit variable standing for itself), their product added to ``w`` by
        one BLAS call; then the mask."""
        lines = self.lines
        step = 1.0 if update.sign == 0 else float(update.sign)
        base = 1.0 if update.sign else 0.0
        weights = self.array(f"{self.name}.{equation.var}")
        dtype = self.scalar[len("np."):]
        scales = []
        for terms, index, count in ((update.row_scale, "i", "npost"), (update.column_scale, "j", "npre")):
            if not terms:
                scales.append(None)
                continue
            total = self.buffer((count,))
            lines(f"{total}[:] = 0.0")
            lines("for t in range(trials):")
            lines.indent()(f"for {index} in range({count}):")
            lines.indent()(f"{total}[{index}] += " + " + ".join(f"np.float64({self.term(c, f)})" for c, f in terms))
            lines.dedent()
            lines.dedent()
            lines(f"{total}[:] = {step!r} * ({total} * per_trial)")
            scales.append(total)
        rows, columns = scales
        if rows or columns or base != 1.0:
            lines("for i in range(npost):")
            lines.indent()(f"b = {base!r}" + (f" + {rows}[i]" if rows else ""))
            lines("for j in range(npre):")
            lines.indent()(f"{weights}[i, j] = {weights}[i, j] * (b" + (f" + {columns}[j])" if columns else ")"))
            lines.dedent()
            lines.dedent()
        if update.outer:
            terms = len(update.outer)
            post_unit = _single_unit_factor(update.outer[0][1], "post") if terms == 1 else None
            pre_unit = _single_unit_factor(update.outer[0][2], "pre") if terms == 1 else None
            # a term's single unit variable is its factor matrix itself (L as its transpose, a view;
            # R as it is) and its scalars go into the product's alpha: only other factors are
            # written out (on two threads, transposing 128 x 256 errors took longer than the BLAS
            # update of a 256 x 256 matrix from them)
            alpha = [repr(step)]
            if post_unit:
                unit, scalars = post_unit
                left = f"{self.array(self.side_key(unit))}.T"
                alpha += [repr(update.outer[0][0]), *(self.emitter.emit(f, pure_lookup) for f in scalars)]
            else:
                # L is written transposed, (post, terms x trials), in tiles of trials, so that each
                # write is contiguous and each read stays in the cache lines of the tile's rows (one
                # trial after another, every write strided, took 2 ns a factor)
                buffer = self.buffer(("npost", terms, "trials"), dtype)
                lines(f"for t0 in range(0, trials, {TRANSPOSE_TILE}):")
                lines.indent()
                for k, (coefficient, post, _) in enumerate(update.outer):
                    lines("for i in range(npost):")
                    lines.indent()(f"for t in range(t0, min(t0 + {TRANSPOSE_TILE}, trials)):")
                    lines.indent()(f"{buffer}[i, {k}, t] = {self.term(coefficient, post)}")
                    lines.dedent()
                    lines.dedent()
                lines.dedent()
                left = f"{buffer}.reshape(npost, {terms} * trials)"
            if pre_unit:
                unit, scalars = pre_unit
                right = self.array(self.side_key(unit))
                alpha += [self.emitter.emit(f, pure_lookup) for f in scalars]
            else:
                buffer = self.buffer((terms, "trials", "npre"), dtype)
                lines("for t in range(trials):")
                lines.indent()
                for k, (_, _, pre) in enumerate(update.outer):
                    lines("for j in range(npre):")
                    lines.indent()(f"{buffer}[{k}, t, j] = {self.term(1.0, pre)}")
                    lines.dedent()
                lines.dedent()
                right = f"{buffer}.reshape({terms} * trials, npre)"
            alpha.append("per_trial")
            lines(f"gemm({self.scalar}({' * '.join(alpha)}), {left}, {right}, {self.scalar}(1.0), {weights})")
        if self.projection.mask is not None:  # a flat loop: it vectorises where one over (i, j) did not
            lines(f"flat, kept = {weights}.reshape(-1), {self.array_mask()}.reshape(-1)")
            lines("for k in range(flat.size):")
            lines.indent()("flat[k] *= kept[k]")
            lines.dedent()

    # reductions ------------------------------------------------------------------------
    def classify(self, reduce: Reduce) -> str:
        if reduce.func == "cumsum_post":
            return "cumsum"
        if reduce.func == "sum_pre":
            return "rowsum" if "post" in reduce.arg.domain else "scalar"
        return "colsum" if "pre" in reduce.arg.domain else "scalar"

    def prepare_reductions(self, expr: Node, names: dict[Node, str]) -> list[Reduce]:
        """Emit the passes for column and scalar reductions; return the in-row ones."""
        in_row = []
        lines = self.lines
        for reduce in reductions_under(expr):
            kind = self.classify(reduce)
            if kind == "colsum":
                buffer = self.buffer(("trials", "npre"))
                blocks = _BlockViews(f"c{len(self.buffers)}", lines, self.scalar, deferred=True)
                argument = self.emitter.emit(reduce.arg, blocks.lookup(self.name_lookup))
                lines(f"chunks = (npre + {COLUMN_CHUNK - 1}) // {COLUMN_CHUNK}")
                lines("for k in numba.prange(trials * chunks):")
                lines.indent()
                lines("t = k // chunks")
                lines(f"j0 = (k % chunks) * {COLUMN_CHUNK}")
                lines(f"j1 = min(j0 + {COLUMN_CHUNK}, npre)")
                lines(f"total = {buffer}[t, j0:j1]")
                lines("total[:] = 0.0")
                lines("for i in range(npost):")
                lines.indent()
                for line in blocks.definitions():
                    lines(line)
                lines("for j in range(j1 - j0):")
                lines.indent()(f"total[j] += {argument}")
                lines.dedent()
                lines.dedent()
                lines.dedent()
                names[reduce] = f"{self.scalar}({buffer}[t, j])"
            elif kind == "scalar":
                buffer = self.buffer(("trials",))
                index = "j" if reduce.func == "sum_pre" else "i"
                count = "npre" if reduce.func == "sum_pre" else "npost"
                argument = self.emitter.emit(reduce.arg, self.name_lookup)
                lines("for t in range(trials):")
                lines.indent()(f"{buffer}[t] = 0.0")
                lines(f"for {index} in range({count}):")
                lines.indent()(f"{buffer}[t] += {argument}")
                lines.dedent()
                lines.dedent()
                names[reduce] = f"{self.scalar}({buffer}[t])"
            else:
                in_row.append(reduce)
        return in_row

    # hoisting ------------------------------------------------------------------------
    def hoist(self, expr: Node, names: dict[Node, str], number: int) -> tuple[list[tuple[str, Node]], list[tuple[str, Node]]]:
        """Pick maximal non-trivial subtrees over post/no units (rows) and over pre units (columns)."""
        rows: list[tuple[str, Node]] = []
        columns: list[tuple[str, Node]] = []

        def visit(node: Node) -> None:
            if node in names or isinstance(node, (Name, Const)):
                return
            if not node.boolean and is_pure(node):  # constants and parameters: once per call
                label = f"g{len(self.scalars)}"
                self.scalars.append(f"{label} = {self.emitter.emit(node, lambda _: None)}")
                names[node] = label
                return
            if not node.boolean and node.domain <= _POST:
                label = f"r{number}_{len(rows)}"
                rows.append((label, node))
                names[node] = f"{label}[t]" if self.shared else label
                return
            if not node.boolean and node.domain == _PRE:
                buffer = self.buffer(("trials", "npre"), self.scalar[3:])
                columns.append((buffer, node))
                names[node] = f"{buffer}[t, j]"
                return
            for child in node.children():
                visit(child)

        visit(expr)
        return rows, columns

    def lookup_with(self, names: dict[Node, str]):
        def lookup(node: Node) -> str | None:
            if node in names:
                return names[node]
            return self.name_lookup(node)

        return lookup

    # synapse equations ---------------------------------------------------------------------
    def synapse_equation(self, number: int, equation: Equation, fused: bool) -> None:
        lines = self.lines
        names: dict[Node, str] = {}
        in_row = self.prepare_reductions(equation.expr, names)
        cumsums = [r for r in in_row if r.func == "cumsum_post"]
        rowsums = [r for r in in_row if r.func == "sum_pre"]
        sequential = bool(cumsums)
        # running sums over columns are independent: rows go in order within chunks of
        # columns, chunks in parallel, unless a row needs all its columns (sum_pre, or a
        # cumsum_post of post-only terms)
        chunked = sequential and not rowsums and all("pre" in r.arg.domain for r in cumsums)
        # in-row reductions: names first so that hoisted subtrees can use them
        carries = []
        for index, reduce in enumerate(rowsums):
            names[reduce] = f"{self.scalar}(q{number}_{index}[t])" if self.shared else f"{self.scalar}(q{number}_{index})"
        for index, reduce in enumerate(cumsums):
            label = f"c{number}_{index}"
            if "pre" in reduce.arg.domain:
                carry = self.buffer(("trials", "npre"))
                names[reduce] = f"{self.scalar}({label})"
            else:
                carry = self.buffer(("trials",))
                names[reduce] = f"{self.scalar}({label}[t])" if self.shared else f"{self.scalar}({label})"
            carries.append((label, carry, reduce))
        element_cumsums = {r for _, _, r in carries if "pre" in r.arg.domain}
        rows, columns = self.hoist(equation.expr, names, number)
        lookup = self.lookup_with(names)
        plain = self.name_lookup
        # column buffers, once per trial
        if columns:
            lines("for t in numba.prange(trials):")
            lines.indent()("for j in range(npre):")
            lines.indent()
            for buffer, node in columns:
                lines(f"{buffer}[t, j] = {self.emitter.emit(node, lookup, own=True)}")
            lines.dedent()
            lines.dedent()
        for _, carry, _ in carries:
            lines(f"{carry}[...] = 0.0")
        weights = self.array(f"{self.name}.{equation.var}")
        target = f"{weights}[i, j]" if self.shared else f"{weights}[t, i, j]"
        masked = self.projection.mask is not None
        if self.shared:
            self._shared_pass(number, equation, lookup, plain, rows, rowsums, carries, sequential, chunked, target, masked)
            return
        if chunked:
            part = self.buffer(("trials", "chunks", "npost")) if fused else None
            lines(f"chunks = (npre + {COLUMN_CHUNK - 1}) // {COLUMN_CHUNK}")
            lines("for k in numba.prange(trials * chunks):")
            lines.indent()("t = k // chunks")
            lines("c = k % chunks")
            lines(f"ja = c * {COLUMN_CHUNK}")
            lines(f"jb = min(ja + {COLUMN_CHUNK}, npre)")
            lines("for i in range(npost):")
            lines.indent()
        elif sequential:
            lines("for t in numba.prange(trials):")
            lines.indent()("for i in range(npost):")
            lines.indent()
        else:
            lines("for k in numba.prange(trials * npost):")
            lines.indent()("t = k // npost")
            lines("i = k % npost")
        for index, reduce in enumerate(rowsums):
            label = f"q{number}_{index}"
            lines(f"{label} = 0.0")
            lines("for j in range(npre):")
            lines.indent()(f"{label} += {self.emitter.emit(reduce.arg, plain)}")
            lines.dedent()
        for label, carry, reduce in carries:
            if reduce not in element_cumsums:
                lines(f"{label} = {carry}[t] + {self.emitter.emit(reduce.arg, plain)}")
                lines(f"{carry}[t] = {label}")
        for label, node in rows:
            lines(f"{label} = {self.emitter.emit(node, lookup, own=True)}")
        blocks = _BlockViews(number, lines, self.scalar)
        value = self.emitter.emit(equation.expr, blocks.lookup(lookup))
        target = blocks.lookup(lookup)(Name(equation.var, "synapse", equation.var))
        cumsum_lines = self.running_sum_lines(blocks, carries, element_cumsums, plain)
        mask = blocks.view(f"{self.array_mask()}[i, j]") if masked else None
        span = ("ja", "jb") if chunked else ("0", "npre")
        variants = [("fuse", True, False), ("count", False, True), ("else", False, False)] if fused else [(None, False, False)]
        for position, (condition, accumulate, marking) in enumerate(variants):
            if condition is not None:
                lines("else:" if condition == "else" else f"if {condition}:" if position == 0 else f"elif {condition}:")
                lines.indent()
            if accumulate:
                lines("acc = 0.0")
            if marking:
                lines("moved = False")
            blocks.open(*span, extra=["xr = xn[t, j0:j1]"] if accumulate else [])
            if accumulate:
                lines(f"part = {self.scalar}(0.0)")
            lines("for j in range(j1 - j0):")
            lines.indent()
            for line in cumsum_lines:
                lines(line)
            value_t = f"{self.scalar}({value})"  # as the reference: the update in the state's dtype
            lines(f"v = {value_t}" if equation.op == "=" else f"v = {target} {equation.op[0]} {value_t}")
            if masked:
                lines(f"v = v * {mask}")
            if marking:
                lines(f"moved |= v != {target}  # no branch: the loop vectorises; NaN differs from itself")
            lines(f"{target} = v")
            if accumulate:
                lines("part += v * xr[j]")
            lines.dedent()
            if accumulate:
                lines("acc += part")
            blocks.close()
            if accumulate:
                lines(f"{part}[t, c, i] = acc" if chunked else "drive[t, i] = acc")
            if marking:
                lines("if moved:")
                lines.indent()("changed[t] = 1  # every writer writes 1: rows of a trial may run on several threads")
                lines.dedent()
            if condition is not None:
                lines.dedent()
        lines.dedent()
        if sequential:
            lines.dedent()
        if chunked and fused:
            lines("if fuse:")
            lines.indent()("for k in numba.prange(trials * npost):")
            lines.indent()("t = k // npost")
            lines("i = k % npost")
            lines("acc = 0.0")
            lines("for c in range(chunks):")
            lines.indent()(f"acc += {part}[t, c, i]")
            lines.dedent()
            lines("drive[t, i] = acc")
            lines.dedent()
            lines.dedent()

    def running_sum_lines(self, blocks: _BlockViews, carries, element_cumsums, plain) -> list[str]:
        """The inner-loop lines that carry the ``cumsum_post`` sums of terms over pre units, each a
        running sum per column read and written through a block view."""
        found = []
        for label, carry, reduce in carries:
            if reduce in element_cumsums:
                running = blocks.view(f"{carry}[t, j]")
                found.append(f"{label} = {running} + {self.emitter.emit(reduce.arg, blocks.lookup(plain))}")
                found.append(f"{running} = {label}")
        return found

    def _shared_pass(self, number, equation, lookup, plain, rows, rowsums, carries, sequential, chunked, target, masked):
        """The trial mean of the update, row by row and block by block: for each trial a
        contiguous pass over the block adds into a float64 block total, then the block of
        the row is updated once."""
        lines = self.lines
        element_cumsums = {r for _, _, r in carries if "pre" in r.arg.domain}
        if chunked:
            lines(f"chunks = (npre + {COLUMN_CHUNK - 1}) // {COLUMN_CHUNK}")
            lines("for c in numba.prange(chunks):")
            lines.indent()(f"ja = c * {COLUMN_CHUNK}")
            lines(f"jb = min(ja + {COLUMN_CHUNK}, npre)")
        else:
            lines("ja = 0")
            lines("jb = npre")
        lines(f"for i in {'range' if sequential else 'numba.prange'}(npost):")
        lines.indent()
        for index, reduce in enumerate(rowsums):
            label = f"q{number}_{index}"
            lines(f"{label} = np.zeros(trials)")
            lines("for t in range(trials):")
            lines.indent()("for j in range(npre):")
            lines.indent()(f"{label}[t] += {self.emitter.emit(reduce.arg, plain)}")
            lines.dedent()
            lines.dedent()
        for label, carry, reduce in carries:
            if reduce not in element_cumsums:
                lines(f"{label} = np.empty(trials)")
                lines("for t in range(trials):")
                lines.indent()(f"{label}[t] = {carry}[t] + {self.emitter.emit(reduce.arg, plain)}")
                lines(f"{carry}[t] = {label}[t]")
                lines.dedent()
        for label, _ in rows:
            lines(f"{label} = np.empty(trials, dtype={self.scalar})")
        if rows:
            lines("for t in range(trials):")
            lines.indent()
            for label, node in rows:
                lines(f"{label}[t] = {self.emitter.emit(node, lookup, own=True)}")
            lines.dedent()
        blocks = _BlockViews(number, lines, self.scalar, deferred=True)
        value = self.emitter.emit(equation.expr, blocks.lookup(lookup))
        cumsum_lines = self.running_sum_lines(blocks, carries, element_cumsums, plain)
        lines(f"for j0 in range(ja, jb, {_BlockViews.SIZE}):")
        lines.indent()(f"j1 = min(j0 + {_BlockViews.SIZE}, jb)")
        lines("total = np.zeros(j1 - j0)")
        lines("for t in range(trials):")
        lines.indent()
        for line in blocks.definitions():
            lines(line)
        lines("for j in range(j1 - j0):")
        lines.indent()
        for line in cumsum_lines:
            lines(line)
        lines(f"total[j] += {value}")
        lines.dedent()
        lines.dedent()
        lines(f"wv = {target[:-2]}j0:j1]")
        if masked:
            lines(f"mv = {self.array_mask()}[i, j0:j1]")
        lines("for j in range(j1 - j0):")
        lines.indent()(f"v = {self.scalar}(total[j] * per_trial)")
        if equation.op != "=":
            lines(f"v = wv[j] {equation.op[0]} v")
        if masked:
            lines("v = v * mv[j]")
        lines("wv[j] = v")
        lines.dedent()
        lines.dedent()
        lines.dedent()
        if chunked:
            lines.dedent()

    # post- and pre-level equations -----------------------------------------------------------
    def side_equation(self, number: int, equation: Equation) -> None:
        lines = self.lines
        names: dict[Node, str] = {}
        in_row = self.prepare_reductions(equation.expr, names)
        lookup = self.lookup_with(names)
        index_name, count = ("i", "npost") if equation.level == "post" else ("j", "npre")
        lines(f"for k in numba.prange(trials * {count}):")
        lines.indent()(f"t = k // {count}")
        lines(f"{index_name} = k % {count}")
        for index, reduce in enumerate(in_row):  # sum_pre of synapse terms in a post equation
            label = f"q{number}_{index}"
            lines(f"{label} = 0.0")
            lines("for j in range(npre):")
            lines.indent()(f"{label} += {self.emitter.emit(reduce.arg, self.name_lookup)}")
            lines.dedent()
            names[reduce] = f"{self.scalar}({label})"
        target = f"{self.array(f'{self.name}.{equation.target}')}[t, {index_name}]"
        lines(assign_statement(target, equation.op, self.emitter.emit(equation.expr, lookup)))
        lines.dedent()


@dataclass(frozen=True)
class SeparableUpdate:
    """``w_new = w * (base + mean_t R[t, i] + mean_t C[t, j]) + mean_t sum_k F_k[t, i] G_k[t, j]``.

    ``row_scale`` and ``column_scale`` are lists of factor products (each a tuple of nodes
    over post units / scalars, or pre units / scalars) whose trial means scale ``w``;
    ``outer`` lists pairs (post factors, pre factors) added as one GEMM. ``sign`` is +1 or
    -1 (``+=``/``-=``), 0 for ``=``.
    """

    sign: int
    row_scale: tuple[tuple[float, tuple[Node, ...]], ...]
    column_scale: tuple[tuple[float, tuple[Node, ...]], ...]
    outer: tuple[tuple[float, tuple[Node, ...], tuple[Node, ...]], ...]


#: Largest number of terms of a separable update (each adds a factor per unit and trial to write).
_MAX_TERMS = 16


def separable_terms(equation: Equation) -> SeparableUpdate | None:
    """The separable form of a shared-weight update, or None when it has none.

    Accepted: ``+=``, ``-=`` or ``=`` of a sum of terms ``c * f(post) * g(pre) * w**k``
    (:func:`~plasticity.equations.separable.expand`, ``where`` over both sides not split) with
    ``k`` in {0, 1}, where a ``k = 1``
    term has no pre factor or no post factor (so its trial mean is a row or column scaling; a
    product of both would need a matrix). Factors are subtrees over at most one axis without
    reductions; no other synapse variable appears.
    """
    if equation.op not in ("+=", "-=", "="):
        return None
    terms = expand(equation.expr, _MAX_TERMS, split_where=False)  # where() keeps its guard: evaluated per synapse
    if terms is None:
        return None
    rows, columns, outer = [], [], []
    for term in terms:
        coefficient, factors, power = term.coef, term.factors, len(term.synapses)
        if power > 1 or any(var != equation.var for var in term.synapses):
            return None
        if any(contains(factor, (Reduce,)) for factor in factors):
            return None
        post = tuple(f for f in factors if "post" in f.domain)
        pre = tuple(f for f in factors if "pre" in f.domain)
        scalars = tuple(f for f in factors if not f.domain)
        if power == 1:
            if post and pre:
                return None
            (columns if pre else rows).append((coefficient, scalars + (pre or post)))
        else:
            outer.append((coefficient, scalars + post, pre))
    sign = {"+=": 1, "-=": -1, "=": 0}[equation.op]
    return SeparableUpdate(sign, tuple(rows), tuple(columns), tuple(outer))
