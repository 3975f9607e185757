"""Multi-query associative recall (MQAR) and the ``attention.recall`` and ``attention.train`` protocols.

MQAR (Arora, Eyuboglu, Timalsina, Johnson, Poli, Zou, Rudra and Re 2023, "Zoology: measuring and
improving recall in efficient language models", arXiv:2312.04927) is a sequence of key-value
token pairs followed by queries of earlier keys, each to be answered with its value. The
generator here follows zoology's ``multiquery_ar``: keys drawn without replacement from the
first half of the vocabulary, values from the second half, the pairs first, then the queries at
positions whose distance from the context follows a power law (exponent ``power_a``), the other
positions filled with token 0. Sequences are generated locally from the seed; nothing is
downloaded.

The training-free recall harness embeds tokens by fixed random unit vectors (or one-hot
vectors) of ``d_model`` dimensions; at every value token a memory writes the pair (key = the
previous token's embedding, value = this token's embedding), at every query token it reads with
the key's embedding, and the answer is the value token whose embedding has the largest dot
product with the read-out. The fast-weight memories (:mod:`plasticity.networks.attention`) run
their recurrence over the whole sequence (write strength b = 0 at tokens that write nothing;
the gated memories close their gate, a = ``gamma``, only where they write), the softmax memory
keeps every written pair and reads them by softmax separation.

The trained harness (``attention.train``) learns the embeddings and the memory layer's
projections, gates and write strengths with torch autograd through the differentiable chunked
form, one memory layer per model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import xarray as xr

from plasticity.backends.runtime import resolve
from plasticity.errors import ConfigError
from plasticity.networks import attention as att
from plasticity.networks._assoc import trial_generators
from plasticity.params import Choice, Int, Maybe, Real, RuleSpec
from plasticity.protocols import protocol

__all__ = ["Sequences", "multiquery_ar", "embeddings", "recall", "train", "EMBEDDINGS"]

EMBEDDINGS = ("random", "onehot")
MEMORY_CHOICES = (*att.MEMORIES, "rule")
#: AdamW's weight decay in ``attention.train``, zoology's default (``TrainConfig.weight_decay``).
WEIGHT_DECAY = 0.1
#: Fraction of the training steps over which the learning rate rises linearly from 0 to ``lr``
#: before its cosine decay to 0 (zoology anneals by a cosine to 0 as well).
WARMUP = 0.1


@dataclass
class Sequences:
    """MQAR sequences: ``tokens`` (n, seq_len) int, ``targets`` (n, seq_len) the value to answer
    after each query token, -1 elsewhere, and the ``keys`` and ``values`` of the pairs (n, pairs)."""

    tokens: np.ndarray
    targets: np.ndarray
    keys: np.ndarray
    values: np.ndarray


def check_lengths(vocab: int, seq_len: int, pairs: int) -> None:
    """A ConfigError naming what is too small when ``pairs`` pairs and their queries do not fit."""
    if pairs > vocab // 2 - 1:
        raise ConfigError(f"pairs must be at most {vocab // 2 - 1}: vocab {vocab} has {vocab // 2 - 1} key tokens; got {pairs}")
    if seq_len < 4 * pairs:
        raise ConfigError(
            f"seq_len must be at least 4 * pairs = {4 * pairs} ({2 * pairs} tokens of pairs and {2 * pairs} of queries "
            f"with their answers); got {seq_len}"
        )


def multiquery_ar(vocab: int, seq_len: int, pairs: int, count: int, rng: np.random.Generator, *,
                  power_a: float = 0.01) -> Sequences:
    """``count`` MQAR sequences (zoology's ``multiquery_ar`` generator, see the module docstring).

    Vectorised over the sequences: the keys and values are the first ``pairs`` of a uniformly random
    permutation of each half of the vocabulary, and the query slots are drawn without replacement with
    probability proportional to the power law by the Gumbel-top-k trick (Kool, van Hoof and Welling
    2019, ICML), which gives the same ordered sample as drawing one slot after another (numpy's and
    zoology's ``choice(..., replace=False, p=...)`` redraws a batch and keeps the new slots, a slightly
    different law of the query positions; every key is queried once in both)."""
    check_lengths(vocab, seq_len, pairs)
    half = vocab // 2
    keys = 1 + np.argsort(rng.random((count, half - 1)), axis=1)[:, :pairs]
    values = half + np.argsort(rng.random((count, vocab - half)), axis=1)[:, :pairs]
    context = 2 * pairs
    slots = (seq_len - context) // 2
    log_weights = (power_a - 1) * np.log(np.arange(1, slots + 1, dtype=np.float64))
    gaps = np.argsort(-(log_weights + rng.gumbel(size=(count, slots))), axis=1)[:, :pairs]
    tokens = np.zeros((count, seq_len), dtype=np.int64)
    targets = np.full((count, seq_len), -1, dtype=np.int64)
    tokens[:, 0:context:2], tokens[:, 1:context:2] = keys, values
    rows = np.arange(count)[:, None]
    tokens[rows, context + 2 * gaps] = keys
    targets[rows, context + 2 * gaps] = values
    return Sequences(tokens, targets, keys, values)


def embeddings(vocab: int, d_model: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """(vocab, d_model) fixed token embeddings: random unit vectors, or one-hot vectors (keys and
    values each a basis vector; needs d_model >= vocab / 2); token 0 (filler) is the zero vector."""
    if kind == "onehot":
        half = vocab // 2
        if d_model < half:
            raise ConfigError(f"d_model must be at least vocab / 2 = {half} for one-hot embeddings; got {d_model}")
        table = np.zeros((vocab, d_model))
        table[np.arange(1, vocab), np.arange(1, vocab) % half] = 1.0
        return table
    table = rng.standard_normal((vocab, d_model))
    table /= np.linalg.norm(table, axis=1, keepdims=True)
    table[0] = 0.0
    return table


def _answer(read: np.ndarray, table: np.ndarray, vocab: int) -> np.ndarray:
    """The value token whose embedding has the largest dot product with each read-out (..., d)."""
    half = vocab // 2
    return half + np.argmax(read @ table[half:].T, axis=-1)


@protocol("attention.recall")
def recall(
    *,
    memory: Annotated[str, Choice(*MEMORY_CHOICES)] = "delta",
    rule: Annotated[Any, Maybe(RuleSpec())] = None,
    vocab: Annotated[int, Int(8, 1_000_000)] = 8192,
    seq_len: Annotated[int, Int(4, 1_000_000)] = 512,
    pairs: Annotated[int, Int(1, 100_000)] = 64,
    d_model: Annotated[int, Int(1, 4096)] = 64,
    embedding: Annotated[str, Choice(*EMBEDDINGS)] = "random",
    gamma: Annotated[float, Real(0, 1)] = 0.99,
    beta: Annotated[float, Real(0, 1e4, low_open=True)] = 8.0,
    power_a: Annotated[float, Real(0, 1, low_open=True)] = 0.01,
    trials: Annotated[int, Int(1, 100_000)] = 32,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Training-free multi-query associative recall (Arora et al. 2023) by one sequence memory.

    Each of ``trials`` sequences holds ``pairs`` key-value pairs of a ``vocab``-token vocabulary
    and a query of every key within ``seq_len`` tokens (see :mod:`plasticity.networks.mqar`);
    ``memory`` (one of :data:`~plasticity.networks.attention.MEMORIES`, or ``"rule"`` for a
    user's ``rule`` run on the engine) stores the pairs in ``d_model`` dimensions and answers
    the queries. ``gamma``: the decay of ``decayed`` and the closed gate of ``gated`` and
    ``gated_delta``; ``beta``: the softmax memory's inverse temperature. Records per trial the
    ``accuracy`` (fraction of queries answered with their value) and the ``state`` size (numbers
    the memory holds after the sequence: d_model^2 for a fast-weight memory, the written keys and
    values for softmax). The same ``seed`` gives every memory the same sequences.
    """
    if memory == "rule" and rule is None:
        raise ConfigError("rule must be given when memory is 'rule' (a library name or a table of equations)")
    if memory != "rule" and rule is not None:
        raise ConfigError(f"rule is only read when memory is 'rule'; memory {memory!r} has its own")
    check_lengths(vocab, seq_len, pairs)
    runtime = resolve(backend, device, dtype)
    att.check_fits(f"attention.recall with trials x seq_len x d_model = {trials} x {seq_len} x {d_model}",
                   8 * trials * seq_len * (4 * d_model + 2) + 8 * vocab * d_model)
    data_rng, embed_rng = trial_generators(seed, 2)
    data = multiquery_ar(vocab, seq_len, pairs, trials, data_rng, power_a=power_a)
    table = embeddings(vocab, d_model, embedding, embed_rng)
    writes = np.zeros(data.tokens.shape, dtype=bool)
    writes[:, 1 : 2 * pairs : 2] = True
    asked = data.targets >= 0
    if memory == "softmax":
        read = _softmax_reads(table, data, beta, runtime)
        state = np.full(trials, 2 * pairs * d_model)
    else:
        read = _fast_weight_reads(memory, rule, table, data.tokens, writes, asked, gamma, runtime)
        state = np.full(trials, d_model * d_model)
    answers = _answer(read, table, vocab)
    right = np.where(asked, answers == data.targets, False)
    accuracy = right.sum(1) / asked.sum(1)
    return xr.Dataset(
        {
            "accuracy": (("trial",), accuracy, {"long_name": "fraction of queries answered with their value"}),
            "state": (("trial",), state, {"long_name": "numbers the memory holds after the sequence"}),
        },
        coords={"trial": np.arange(trials)},
        attrs={"task": "multi-query associative recall (Arora et al. 2023)", "memory": memory},
    )


def _fast_weight_reads(memory, rule, table, tokens, writes, asked, gamma, runtime) -> np.ndarray:
    """Read-outs (n, seq_len, d) of a fast-weight memory run over the whole sequences."""
    n, length = tokens.shape
    keys = np.zeros((n, length, table.shape[1]))
    keys[:, 1:] = table[tokens[:, :-1]]
    keys[~writes] = 0.0
    values = np.where(writes[:, :, None], table[tokens], 0.0)
    queries = np.where(asked[:, :, None], table[tokens], 0.0)
    strength = writes.astype(np.float64)
    gate = np.where(writes, gamma, 1.0)
    if memory == "rule":
        return att.recurrent(rule, queries, keys, values, gate, strength, backend=runtime.backend, dtype=runtime.dtype,
                             device=runtime.device)
    return att.scan(memory, queries, keys, values, gate, strength, gamma=gamma, backend=runtime.backend,
                    dtype=runtime.dtype, device=runtime.device)


def _softmax_reads(table, data: Sequences, beta, runtime) -> np.ndarray:
    """Read-outs (n, seq_len, d) of the softmax memory: every written pair kept, each query read by
    one universal Hopfield retrieval (dot similarity, softmax separation) over them."""
    from plasticity.networks.uhn import retrieve

    n, length = data.tokens.shape
    read = np.zeros((n, length, table.shape[1]))
    memory, projection = runtime.array(table[data.keys]), runtime.array(table[data.values])
    rows = np.arange(n)
    for column in range(data.keys.shape[1]):
        position = np.argmax(data.tokens[:, 2 * data.keys.shape[1]:] == data.keys[:, column, None], axis=1)
        position += 2 * data.keys.shape[1]
        out = retrieve(runtime, memory, projection, runtime.array(table[data.keys[:, column]]), "dot", "softmax",
                       beta * table.shape[1])
        read[rows, position] = runtime.host(out)
    return read


# ----------------------------------------------------------------------------- trained recall


def initial_gate_bias(seq_len: int) -> float:
    """The bias of the trained gate a_t = sigmoid(...) at initialisation: log(seq_len - 1), so that the
    gate starts at a = 1 - 1 / seq_len and a pair written at the start of a sequence still carries
    about 1/e of its weight at the end. A shorter memory (a = 0.95, bias 3) passes 0.95^48 = 0.09 of
    a pair to a query 48 tokens later, too little for the gate to learn to open: gated linear
    attention and gated DeltaNet then stay on MQAR's loss plateau (vocab 512, 64 tokens, 16 pairs,
    d 16, 800 steps: 0.01 and 0.00; with this bias 0.71 and 0.80). Gated recurrences are initialised
    with slow gates for the same reason (Gu and Dao 2023, Mamba, the range of dt)."""
    return math.log(seq_len - 1)


def _recall_model(memory: str, vocab: int, d_model: int, chunk: int, seq_len: int):
    """A one-memory-layer model (torch): token embedding; keys from the previous token (a token
    shift, the short convolution of zoology's and Based's models), queries and values from the
    token; the memory layer (gates a_t, starting at 1 - 1 / seq_len, and write strengths b_t by sigmoids of
    the token; for the fast-weight memories keys and queries L2-normalised and the read-out
    RMS-normalised, as flash-linear-attention's DeltaNet and linear-attention layers do: a
    linear-attention state summed over every token grows with the sequence, and the normalised
    read-out keeps its scale fixed); a residual MLP; a read-out to the vocabulary."""
    import torch

    class RecallModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, d_model)
            self.query, self.key, self.value = (torch.nn.Linear(d_model, d_model, bias=False) for _ in range(3))
            self.gates = torch.nn.Linear(d_model, 2)
            with torch.no_grad():  # gates start open for about the sequence's length
                self.gates.bias[0] = initial_gate_bias(seq_len)
            self.read_norm = torch.nn.RMSNorm(d_model)
            self.mlp = torch.nn.Sequential(torch.nn.Linear(d_model, 2 * d_model), torch.nn.GELU(),
                                           torch.nn.Linear(2 * d_model, d_model))
            self.readout = torch.nn.Linear(d_model, vocab)

        def forward(self, tokens):
            x = self.embed(tokens)
            previous = torch.nn.functional.pad(x[:, :-1], (0, 0, 1, 0))
            q, k, v = self.query(x), self.key(previous), self.value(x)
            if memory == "softmax":
                h = att.softmax_attention(q, k, v, beta=d_model**-0.5)
            else:
                q, k = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(k, dim=-1)
                gates = torch.sigmoid(self.gates(x))
                family = att.FAMILY[memory]
                a = gates[..., 0] if family.gated else None
                if memory == "decayed":
                    a = torch.full_like(gates[..., 0], 0.99)
                b = gates[..., 1] if family.strength else None
                h = self.read_norm(att.chunked(q, k, v, a, b, delta=family.delta, chunk=chunk)[0])
            x = x + h
            return self.readout(x + self.mlp(x))

    return RecallModel()


def learning_rate_factor(step: int, steps: int) -> float:
    """The learning rate at ``step`` (0-based) of ``steps`` as a fraction of the peak: a linear
    warm-up over the first ``WARMUP`` of the steps, then a cosine decay to 0 at the last step."""
    warmup = max(1, round(WARMUP * steps))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup + 1) / (steps - warmup + 1)))


@protocol("attention.train")
def train(
    *,
    memory: Annotated[str, Choice(*att.MEMORIES)] = "delta",
    vocab: Annotated[int, Int(8, 100_000)] = 128,
    seq_len: Annotated[int, Int(4, 100_000)] = 128,
    pairs: Annotated[int, Int(1, 10_000)] = 16,
    d_model: Annotated[int, Int(1, 1024)] = 32,
    steps: Annotated[int, Int(1, 1_000_000)] = 300,
    batch: Annotated[int, Int(1, 100_000)] = 32,
    lr: Annotated[float, Real(0, 1, low_open=True)] = 1e-2,
    test: Annotated[int, Int(1, 100_000)] = 256,
    chunk: Annotated[int, Int(1, 100_000)] = 64,
    backend: str = "numba",
    seed: int | np.random.SeedSequence = 0,
    dtype: str = "float32",
    device: str | None = None,
) -> xr.Dataset:
    """Multi-query associative recall learned by a one-memory-layer model (Arora et al. 2023).

    A model of token embeddings, one ``memory`` layer (keys from the previous token, learned
    gates and write strengths), a residual MLP and a read-out (see ``_recall_model``) is trained
    with torch autograd (AdamW with weight decay ``WEIGHT_DECAY``, peak rate ``lr`` after a linear
    warm-up, then a cosine decay to 0; zoology's optimiser and schedule) for ``steps`` minibatches of ``batch`` fresh MQAR
    sequences (``vocab``, ``seq_len``, ``pairs``), then tested on ``test`` new sequences.
    Training runs in torch on every backend (on ``device`` with backend 'torch'), so backends
    agree. Records the test ``accuracy`` (fraction of queries answered), the training ``loss``
    per step and the memory's ``state`` size (d_model^2, or 2 x seq_len x d_model for softmax).
    """
    import torch

    check_lengths(vocab, seq_len, pairs)
    runtime = resolve(backend, device, dtype)
    place = runtime.device if runtime.is_torch else torch.device("cpu")
    data_rng, test_rng, init_rng = trial_generators(seed, 3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(init_rng.integers(2**62)))
        model = _recall_model(memory, vocab, d_model, chunk, seq_len).to(device=place, dtype=getattr(torch, dtype))
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: learning_rate_factor(step, steps))
    losses = np.empty(steps)
    for step in range(steps):
        data = multiquery_ar(vocab, seq_len, pairs, batch, data_rng)
        logits = model(torch.as_tensor(data.tokens, device=place))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), torch.as_tensor(data.targets, device=place).reshape(-1),
                                                 ignore_index=-1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        scheduler.step()
        losses[step] = float(loss.detach())
    data = multiquery_ar(vocab, seq_len, pairs, test, test_rng)
    with torch.no_grad():
        answers = model(torch.as_tensor(data.tokens, device=place)).argmax(-1).cpu().numpy()
    asked = data.targets >= 0
    state = 2 * seq_len * d_model if memory == "softmax" else d_model * d_model
    return xr.Dataset(
        {
            "accuracy": ((), float((answers[asked] == data.targets[asked]).mean()),
                         {"long_name": "fraction of test queries answered with their value"}),
            "loss": (("step",), losses, {"long_name": "training cross-entropy at the queries"}),
            "state": ((), state, {"long_name": "numbers the memory holds after the sequence"}),
        },
        coords={"step": np.arange(1, steps + 1)},
        attrs={"task": "multi-query associative recall, trained (Arora et al. 2023)", "memory": memory},
    )
