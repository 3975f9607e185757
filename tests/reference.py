"""Slow, obviously correct numpy versions of every fast path; the tests compare against them.

Each topic appends its own section headed by a comment.
"""

# ============================================================================
# Associative memories (issue 5): classical, dense, modern and universal Hopfield
# networks. Loops over units and patterns, no tricks.
# ============================================================================

import math as _am_math

import numpy as _am_np


def hopfield_hebbian_weights(patterns):
    """w_ij = (1/N) sum_mu xi_i xi_j for i != j, w_ii = 0."""
    x = _am_np.asarray(patterns, dtype=float)
    p, n = x.shape
    w = _am_np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                w[i, j] = sum(x[mu, i] * x[mu, j] for mu in range(p)) / n
    return w


def hopfield_storkey_weights(patterns):
    """Storkey (1997): w_ij += (xi_i xi_j - xi_i h_ji - h_ij xi_j) / N, h_ij = sum_{k != i, j} w_ik xi_k."""
    x = _am_np.asarray(patterns, dtype=float)
    p, n = x.shape
    w = _am_np.zeros((n, n))
    for mu in range(p):
        xi = x[mu]
        h = _am_np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                h[i, j] = sum(w[i, k] * xi[k] for k in range(n) if k != i and k != j)
        new = w.copy()
        for i in range(n):
            for j in range(n):
                if i != j:
                    new[i, j] = w[i, j] + (xi[i] * xi[j] - xi[i] * h[j, i] - h[i, j] * xi[j]) / n
        w = new
    return w


def hopfield_pseudoinverse_weights(patterns):
    """W = X^T (X X^T)^-1 X with the diagonal set to zero (patterns linearly independent)."""
    x = _am_np.asarray(patterns, dtype=float)
    w = x.T @ _am_np.linalg.inv(x @ x.T) @ x
    _am_np.fill_diagonal(w, 0.0)
    return w


def _am_sign_keep(h, s, tie=1e-9):
    """sign(h), keeping s when h is zero (|h| <= tie absorbs float rounding of an exact zero field)."""
    return 1.0 if h > tie else (-1.0 if h < -tie else s)


def hopfield_async(weights, cue, order_of_sweep, max_sweeps):
    """Asynchronous updates, a full dot product per unit; units in the order ``order_of_sweep(w)`` in sweep w.

    Returns (state, sweeps that changed the state, converged).
    """
    s = _am_np.array(cue, dtype=float)
    sweeps = 0
    for sweep in range(max_sweeps):
        flips = 0
        for i in order_of_sweep(sweep):
            new = _am_sign_keep(float(weights[i] @ s), s[i])
            if new != s[i]:
                s[i] = new
                flips += 1
        if flips == 0:
            return s, sweeps, True
        sweeps += 1
    return s, sweeps, False


def hopfield_sync(weights, cue, max_steps):
    """Synchronous updates; returns (state, steps that changed it, converged, 2-cycle)."""
    s = _am_np.array(cue, dtype=float)
    previous = s.copy()
    steps = 0
    for _ in range(max_steps):
        h = weights @ s
        new = _am_np.array([_am_sign_keep(h[i], s[i]) for i in range(s.size)])
        if _am_np.array_equal(new, s):
            return s, steps, True, False
        steps += 1
        if _am_np.array_equal(new, previous):
            return new, steps, False, True
        previous, s = s, new
    return s, steps, False, False


def dense_energy(patterns, state, power=None):
    """Krotov-Hopfield energy -sum_mu F(xi_mu . s), F(x) = x^power, or exp(x) when power is None."""
    total = 0.0
    for xi in _am_np.asarray(patterns, dtype=float):
        x = float(xi @ state)
        total += _am_math.exp(x) if power is None else x**power
    return -total


def dense_async(patterns, cue, order_of_sweep, max_sweeps, power=None):
    """Asynchronous dense updates: s_i takes the sign of E(s_i = -1) - E(s_i = +1); ties keep."""
    s = _am_np.array(cue, dtype=float)
    sweeps = 0
    for sweep in range(max_sweeps):
        flips = 0
        for i in order_of_sweep(sweep):
            plus, minus = s.copy(), s.copy()
            plus[i], minus[i] = 1.0, -1.0
            new = _am_sign_keep(dense_energy(patterns, minus, power) - dense_energy(patterns, plus, power), s[i])
            if new != s[i]:
                s[i] = new
                flips += 1
        if flips == 0:
            return s, sweeps, True
        sweeps += 1
    return s, sweeps, False


def dense_sync_step(patterns, state, power=None):
    """One synchronous dense step from ``state`` (every unit from the same old state)."""
    s = _am_np.array(state, dtype=float)
    out = s.copy()
    for i in range(s.size):
        plus, minus = s.copy(), s.copy()
        plus[i], minus[i] = 1.0, -1.0
        out[i] = _am_sign_keep(dense_energy(patterns, minus, power) - dense_energy(patterns, plus, power), s[i])
    return out


def modern_update(patterns, state, beta, steps=1):
    """xi <- sum_mu softmax(beta x_mu . xi)_mu x_mu, ``steps`` times."""
    x = _am_np.asarray(patterns, dtype=float)
    xi = _am_np.array(state, dtype=float)
    for _ in range(steps):
        scores = [beta * float(row @ xi) for row in x]
        top = max(scores)
        e = [_am_math.exp(v - top) for v in scores]
        z = sum(e)
        xi = sum((e[mu] / z) * x[mu] for mu in range(len(x)))
    return xi


def uhn_similarity(query, memory, similarity):
    """Per-unit similarity of one query with each memory row: dot/D, -RMS distance, -mean |difference|."""
    d = len(query)
    out = []
    for m in _am_np.asarray(memory, dtype=float):
        if similarity == "dot":
            out.append(sum(query[i] * m[i] for i in range(d)) / d)
        elif similarity == "euclidean":
            out.append(-_am_math.sqrt(sum((query[i] - m[i]) ** 2 for i in range(d)) / d))
        else:
            out.append(-sum(abs(query[i] - m[i]) for i in range(d)) / d)
    return _am_np.array(out)


def uhn_separation(scores, separation, beta, power):
    """softmax(beta s), one-hot max, (s - min)/sum, (s - min)^power/sum, or beta s (unnormalised)."""
    s = _am_np.asarray(scores, dtype=float)
    if separation == "unnormalised":
        return beta * s
    if separation == "softmax":
        e = _am_np.array([_am_math.exp(beta * (v - s.max())) for v in s])
        return e / e.sum()
    if separation == "max":
        w = _am_np.zeros_like(s)
        w[int(_am_np.argmax(s))] = 1.0
        return w
    w = s - s.min()
    if separation == "polynomial":
        w = w**power
    return w / w.sum() if w.sum() > 0 else _am_np.full_like(s, 1.0 / s.size)


def uhn_retrieve(memory, projection, query, similarity, separation, beta, power):
    """P^T sep(sim(M, q)) for one query."""
    w = uhn_separation(uhn_similarity(query, memory, similarity), separation, beta, power)
    return sum(w[mu] * _am_np.asarray(projection, dtype=float)[mu] for mu in range(len(w)))


# ============================================================================
# Loop reference (issue 3, engine backends): one network step as explicit loops over
# trials, units and synapses, evaluating the expression trees with Python floats.
# For tiny networks only; checks the numpy and numba backends alike.
# ============================================================================

import math as _lr_math

from plasticity.equations import Binary as _LrBinary
from plasticity.equations import Call as _LrCall
from plasticity.equations import Compare as _LrCompare
from plasticity.equations import Const as _LrConst
from plasticity.equations import Name as _LrName
from plasticity.equations import Reduce as _LrReduce
from plasticity.equations import Unary as _LrUnary


def _lr_function(name, args):
    x = args[0]
    if name == "exp":
        return _lr_math.exp(x)
    if name == "log":
        return _lr_math.log(x) if x > 0 else (-_lr_math.inf if x == 0 else _lr_math.nan)
    if name == "sqrt":
        return _lr_math.sqrt(x) if x >= 0 else _lr_math.nan
    if name == "abs":
        return abs(x)
    if name == "sign":
        return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)
    if name == "tanh":
        return _lr_math.tanh(x)
    if name == "sigmoid":
        return 1.0 / (1.0 + _lr_math.exp(-x))
    if name == "relu":
        return x if x > 0 else 0.0
    if name == "heaviside":
        return 1.0 if x > 0 else 0.0
    if name == "sin":
        return _lr_math.sin(x)
    if name == "cos":
        return _lr_math.cos(x)
    if name == "minimum":
        return min(args[0], args[1])
    if name == "maximum":
        return max(args[0], args[1])
    if name == "clip":
        return min(max(args[0], args[1]), args[2])
    if name == "where":
        return args[1] if args[0] else args[2]
    raise ValueError(name)


def _lr_eval(node, name, reduce):
    """Value of ``node`` as a Python float; ``name(node)`` and ``reduce(node)`` give leaves."""
    if isinstance(node, _LrConst):
        return node.value
    if isinstance(node, _LrName):
        return name(node)
    if isinstance(node, _LrReduce):
        return reduce(node)
    if isinstance(node, _LrUnary):
        return -_lr_eval(node.operand, name, reduce)
    if isinstance(node, (_LrBinary, _LrCompare)):
        a = _lr_eval(node.left, name, reduce)
        b = _lr_eval(node.right, name, reduce)
        op = node.op
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b if b != 0 else (_lr_math.copysign(_lr_math.inf, a) if a != 0 else _lr_math.nan)
        if op == "**":
            try:
                value = a ** b
            except ZeroDivisionError:
                return _lr_math.inf
            return value if not isinstance(value, complex) else _lr_math.nan
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]
    if isinstance(node, _LrCall):
        return _lr_function(node.func, [_lr_eval(arg, name, reduce) for arg in node.args])
    raise TypeError(node)


def _lr_apply(old, op, value):
    return value if op == "=" else old + value if op == "+=" else old - value if op == "-=" else old * value


def _lr_units(network, state, name, stage, t, dt):
    population = network.populations[name]
    for equation in population.stages[stage]:
        before = {key: value.copy() for key, value in state.items()}
        trials, n = before[f"{name}.{population.variables[0] if population.variables else ''}"].shape

        def leaf(node, tr, u):
            if node.kind == "param":
                return population.params[node.var]
            if node.kind == "time":
                return t
            if node.kind == "dt":
                return dt
            return float(before[f"{name}.{node.var}"][tr, u])

        def value_at(node, tr, u):
            def reduce(r):
                values = [value_at(r.arg, tr, k) for k in range(n)]
                if r.func == "sum":
                    return sum(values)
                if r.func == "mean":
                    return sum(values) / n
                if r.func == "max":
                    return max(values)
                if r.func == "min":
                    return min(values)
                top = max(values)
                return _lr_math.exp(values[u] - top) / sum(_lr_math.exp(v - top) for v in values)

            return _lr_eval(node, lambda leaf_node: leaf(leaf_node, tr, u), reduce)

        target = state[f"{name}.{equation.var}"]
        for tr in range(trials):
            for u in range(n):
                target[tr, u] = _lr_apply(float(before[f"{name}.{equation.var}"][tr, u]), equation.op, value_at(equation.expr, tr, u))


def _lr_plasticity(network, state, name, t, dt):
    projection = network.projections[name]
    rule = projection.rule
    npost, npre = projection.post.n, projection.pre.n
    for equation in rule.parsed:
        before = {key: value.copy() for key, value in state.items()}
        trials = next(v.shape[0] for k, v in before.items() if k.startswith(f"{projection.post.name}."))

        def leaf(node, tr, i, j):
            if node.kind == "param":
                return rule.params[node.var]
            if node.kind == "time":
                return t
            if node.kind == "dt":
                return dt
            if node.kind == "global":
                return float(before[f"{name}.{node.var}"][tr])
            if node.kind in ("pre", "post"):
                population = projection.pre if node.kind == "pre" else projection.post
                owned = {eq.var for eq in rule.parsed if eq.level == node.kind}
                key = f"{name}.{node.name}" if node.var in owned else f"{population.name}.{node.var}"
                return float(before[key][tr, j if node.kind == "pre" else i])
            array = before[f"{name}.{node.var}"]
            return float(array[i, j] if projection.shared else array[tr, i, j])

        def value_at(node, tr, i, j):
            def reduce(r):
                if r.func == "sum_pre":
                    return sum(value_at(r.arg, tr, i, k) for k in range(npre))
                if r.func == "sum_post":
                    return sum(value_at(r.arg, tr, k, j) for k in range(npost))
                return sum(value_at(r.arg, tr, k, j) for k in range(i + 1))  # cumsum_post

            return _lr_eval(node, lambda leaf_node: leaf(leaf_node, tr, i, j), reduce)

        if equation.level == "synapse":
            target = state[f"{name}.{equation.var}"]
            for i in range(npost):
                for j in range(npre):
                    if projection.shared:
                        value = sum(value_at(equation.expr, tr, i, j) for tr in range(trials)) / trials
                        new = _lr_apply(float(target[i, j]), equation.op, value)
                        target[i, j] = new * (projection.mask[i, j] if projection.mask is not None else 1.0)
                    else:
                        for tr in range(trials):
                            new = _lr_apply(float(target[tr, i, j]), equation.op, value_at(equation.expr, tr, i, j))
                            target[tr, i, j] = new * (projection.mask[i, j] if projection.mask is not None else 1.0)
        else:
            target = state[f"{name}.{equation.target}"]
            count = npost if equation.level == "post" else npre
            for tr in range(trials):
                for u in range(count):
                    i, j = (u, 0) if equation.level == "post" else (0, u)
                    target[tr, u] = _lr_apply(float(target[tr, u]), equation.op, value_at(equation.expr, tr, i, j))


def loop_step(network, state, t, dt=1.0, inputs=None, plastic=None):
    """One step of ``network`` on ``state`` (dict of float64 arrays, changed in place).

    The step order is ``network.program``; ``plastic`` names the projections whose rules
    run (all when None). Every value is computed element by element with Python floats.
    """
    for key, value in (inputs or {}).items():
        state[key][...] = value
    for operation in network.program:
        if operation.kind == "reset":
            for population, var in operation.targets:
                state[f"{population}.{var}"][...] = 0.0
        elif operation.kind in ("drive", "feedback"):
            projection = network.projections[operation.projection]
            w = state[f"{projection.name}.w"]
            if operation.kind == "drive":
                source = state[f"{projection.pre.name}.{projection.source}"]
                target = state[f"{projection.post.name}.{projection.target}"]
            else:
                source = state[f"{projection.post.name}.{projection.feedback[0]}"]
                target = state[f"{projection.pre.name}.{projection.feedback[1]}"]
            for tr in range(source.shape[0]):
                weights = w if projection.shared else w[tr]
                for a in range(target.shape[1]):
                    if operation.kind == "drive":
                        total = sum(float(weights[a, b]) * float(source[tr, b]) for b in range(source.shape[1]))
                    else:
                        total = sum(float(weights[b, a]) * float(source[tr, b]) for b in range(source.shape[1]))
                    target[tr, a] += total
        elif operation.kind == "units":
            _lr_units(network, state, operation.population, operation.stage, t, dt)
        elif plastic is None or operation.projection in plastic:
            _lr_plasticity(network, state, operation.projection, t, dt)


# ============================================================================
# Predictive coding (issue 7): hierarchical PC networks, one training step per
# sample written with explicit loops over layers, and the linear 3Q rule.
# ============================================================================

import numpy as _pc_np

_PC_RATES = {
    "linear": (lambda x: x, lambda x: _pc_np.ones_like(x)),
    "tanh": (_pc_np.tanh, lambda x: 1.0 - _pc_np.tanh(x) ** 2),
    "sigmoid": (lambda x: 1.0 / (1.0 + _pc_np.exp(-x)), lambda x: _pc_np.exp(-x) / (1.0 + _pc_np.exp(-x)) ** 2),
    "relu": (lambda x: _pc_np.maximum(x, 0.0), lambda x: (x > 0).astype(float)),
    "leaky_relu": (lambda x: _pc_np.where(x > 0, x, 0.01 * x), lambda x: _pc_np.where(x > 0, 1.0, 0.01)),
}


def pc_train_step(weights, biases, data, target, activation, steps, gamma, lr):
    """Standard PC on a minibatch: feedforward init, ``steps`` synchronous inference steps, one SGD update.

    ``weights[l]`` maps layer l to l+1 (so ``weights[0]`` is W_1), the bottom layer's rate is its value.
    Returns the new weights and biases and the mean energy before each step and at the update.
    """
    f, fprime = _PC_RATES[activation]
    depth = len(weights)
    grads_w = [_pc_np.zeros_like(w) for w in weights]
    grads_b = [_pc_np.zeros_like(b) for b in biases]
    energies = _pc_np.zeros(steps + 1)

    def rate(l, x):
        return x if l == 0 else f(x)

    for sample in range(len(data)):
        x = [_pc_np.array(data[sample], dtype=float)]
        for l in range(depth - 1):
            x.append(weights[l] @ rate(l, x[l]) + biases[l])
        x.append(_pc_np.array(target[sample], dtype=float))
        for step in range(steps + 1):
            errors = [None] + [x[l] - (weights[l - 1] @ rate(l - 1, x[l - 1]) + biases[l - 1]) for l in range(1, depth + 1)]
            energies[step] += sum(0.5 * float(e @ e) for e in errors[1:]) / len(data)
            if step == steps:
                break
            for l in range(1, depth):
                x[l] = x[l] + gamma * (fprime(x[l]) * (weights[l].T @ errors[l + 1]) - errors[l])
        for l in range(1, depth + 1):
            grads_w[l - 1] += _pc_np.outer(errors[l], rate(l - 1, x[l - 1])) / len(data)
            grads_b[l - 1] += errors[l] / len(data)
    new_w = [w + lr * g for w, g in zip(weights, grads_w)]
    new_b = [b + lr * g for b, g in zip(biases, grads_b)]
    return new_w, new_b, energies


def linear_pc_3q(weights, inputs, targets, steps, lr, gamma):
    """The pc_linear_3q rule on a full batch (shared weights): per step, per sample and post unit,
    e = v - W x, v += gamma (y - v - e); then W += lr * mean over samples of e x^T."""
    w = _pc_np.array(weights, dtype=float)
    v = _pc_np.zeros((len(inputs), w.shape[0]))
    for _ in range(steps):
        update = _pc_np.zeros_like(w)
        for s in range(len(inputs)):
            for i in range(w.shape[0]):
                prediction = sum(w[i, j] * inputs[s, j] for j in range(w.shape[1]))
                error = v[s, i] - prediction
                v[s, i] += gamma * (targets[s, i] - v[s, i] - error)
                for j in range(w.shape[1]):
                    update[i, j] += error * inputs[s, j] / len(inputs)
        w += lr * update
    return w


# ============================================================================
# Torch backend (issue 4): the separable expansion of a synapse expression,
# summed monomial by monomial with the numpy reference evaluator.
# ============================================================================

import numpy as _tb_np

from plasticity.backends.numpy_backend import evaluate as _tb_evaluate


def evaluate_monomials(terms, env, reduced, shape):
    """Sum of ``coef * factors * synapse variables`` over ``terms``, each broadcast to ``shape``."""
    total = _tb_np.zeros(shape)
    for term in terms:
        value = _tb_np.full(shape, term.coef)
        for factor in term.factors:
            value = value * _tb_evaluate(factor, env, reduced)
        for name in term.synapses:
            value = value * env[name]
        total = total + value
    return total


# ============================================================================
# BLAS products of the numba backend (plasticity.backends.blas.gemm): a triple loop
# in float64.
# ============================================================================


def gemm(alpha, a, b, beta, out):
    """``alpha * a @ b + beta * out`` as sums over k, element by element (a new float64 array)."""
    import numpy as _gemm_np

    m, k = a.shape
    n = b.shape[1]
    result = _gemm_np.zeros((m, n))
    for i in range(m):
        for j in range(n):
            total = sum(float(a[i, q]) * float(b[q, j]) for q in range(k))
            result[i, j] = alpha * total + (beta * float(out[i, j]) if beta != 0 else 0.0)
    return result


# ============================================================================
# Rule search (plasticity.search): every expression tree of a grammar, written out one
# by one, and the linear-layer learning loop of the generic polynomial kernel.
# ============================================================================


def expression_trees(leaves, operations, max_operations):
    """Every expression text with at most ``max_operations`` binary operations over ``leaves``
    (texts), fully parenthesised, one per tree: no sharing, no deduplication."""
    by_size = [list(leaves)]
    for size in range(1, max_operations + 1):
        found = []
        for left_size in range(size):
            for left in by_size[left_size]:
                for right in by_size[size - 1 - left_size]:
                    for op in operations:
                        found.append(f"({left} {op} {right})")
        by_size.append(found)
    return [text for size in by_size for text in size]


# ============================================================================
# Sequence memories (issue 23, attention as associative memory): the fast-weight
# recurrence and softmax attention as kernel regression, one token and one unit at a time.
# ============================================================================

import math as _seq_math


def sequence_memory(q, k, v, a, b, delta):
    """One sequence: S_t = a_t S + b_t (v_t - delta a_t S k_t) k_t^T, o_t = S_t q_t, with Python loops."""
    tokens, d_k = len(k), len(k[0])
    d_v = len(v[0])
    s = [[0.0] * d_k for _ in range(d_v)]
    out = []
    for t in range(tokens):
        reads = [sum(s[i][j] * float(k[t][j]) for j in range(d_k)) for i in range(d_v)]
        for i in range(d_v):
            residual = float(b[t]) * (float(v[t][i]) - (float(a[t]) * reads[i] if delta else 0.0))
            for j in range(d_k):
                s[i][j] = float(a[t]) * s[i][j] + residual * float(k[t][j])
        out.append([sum(s[i][j] * float(q[t][j]) for j in range(d_k)) for i in range(d_v)])
    return out


def nadaraya_watson(query, keys, values, beta):
    """Kernel regression sum_i K(q, k_i) v_i / sum_i K(q, k_i) with the kernel K = exp(beta q . k)."""
    scores = [beta * sum(float(x) * float(y) for x, y in zip(query, key)) for key in keys]
    top = max(scores)
    kernel = [_seq_math.exp(s - top) for s in scores]
    total = sum(kernel)
    return [sum(kernel[i] * float(values[i][e]) for i in range(len(keys))) / total for e in range(len(values[0]))]


# ============================================================================
# Vector-HaSH (issue 24): the heteroassociative pseudo-inverse and a per-cue recall, as the
# authors' notebooks write them (numpy.linalg.pinv; one cue at a time; argmax per module).
# ============================================================================

import numpy as _vh_np


def vector_hash_pseudoinverse(pre, post):
    """W (post units, pre units) = Y^T (X^T)^+ for pre patterns X and post patterns Y (rows)."""
    return _vh_np.asarray(post, dtype=float).T @ _vh_np.linalg.pinv(_vh_np.asarray(pre, dtype=float)).T


def vector_hash_recall(w_ps, w_gp, w_pg, w_sp, lambdas, threshold, cue, iterations=1):
    """One cue: p = relu(W_ps s); ``iterations`` times g = one-hot of the largest W_gp p in each
    module, p = relu(W_pg g - threshold); s = sign(W_sp p). Returns (sensory, place, grid)."""
    place = _vh_np.maximum(w_ps @ cue, 0.0)
    grid = None
    for _ in range(iterations):
        field = w_gp @ place
        grid = _vh_np.zeros_like(field)
        offset = 0
        for period in lambdas:
            size = period * period
            grid[offset + int(_vh_np.argmax(field[offset:offset + size]))] = 1.0
            offset += size
        place = _vh_np.maximum(w_pg @ grid - threshold, 0.0)
    return _vh_np.sign(w_sp @ place), place, grid


# ============================================================================
# Learning capacity (networks/learning.py): the perceptron rule trained trial by trial, item by
# item, in the stored order, with plain Python loops.
# ============================================================================


def perceptron_training(patterns, targets, epochs, criterion, eta=1.0, kappa=0.0):
    """Train one perceptron per trial from zero weights (``w += eta t x`` whenever ``t (w . x) <=
    kappa``), an epoch being every item in stored order, until the fraction of items with
    ``t (w . x) > 0`` reaches ``criterion``. Returns per trial (met, epoch met or None, updates,
    weights)."""
    results = []
    for x_trial, t_trial in zip(patterns, targets):
        items, inputs = x_trial.shape
        w = [0.0] * inputs

        def right():
            good = 0
            for x, t in zip(x_trial, t_trial[:, 0]):
                good += t * sum(wi * xi for wi, xi in zip(w, x)) > 0
            return good / items

        met, epoch, updates = right() >= criterion, None, 0
        if met:
            epoch = 0
        for current in range(1, epochs + 1):
            if met:
                break
            for x, t in zip(x_trial, t_trial[:, 0]):
                if t * sum(wi * xi for wi, xi in zip(w, x)) <= kappa:
                    w = [wi + eta * t * xi for wi, xi in zip(w, x)]
                    updates += 1
            if right() >= criterion:
                met, epoch = True, current
        results.append((met, epoch, updates, w))
    return results


# ============================================================================
# Sweep stores (plasticity/zarr_chunks.py): a point's chunk written through zarr itself.
# ============================================================================


def zarr_point_write(array, position, value):
    """Write ``value`` at ``position`` (indices along the leading dimensions) of the zarr array
    ``array`` with zarr's own ``setitem``."""
    array[tuple(position)] = value
