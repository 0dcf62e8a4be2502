"""The gradient effect (G-effect) of an unlearning objective (Wang et al. 2025, arXiv 2502.19301).

Definitions (sign convention of the paper, kept everywhere in this package):

* risk R(D; theta) = mean over the items of D of NLL(a) = -(1/T) sum_i log p_i (answer tokens);
* objective L_u = the method's loss (``method.loss``: the forget term plus any retain regulariser) on a batch D_u;
* G-effect e(D) = grad R(D)^T grad L_u(D_u). One SGD step of size eta changes R(D) by about -eta * e(D), so
  unlearning wants e(forget) strongly NEGATIVE (the forget risk rises) and e(retain) >= 0 (the retain risk does not
  rise). GA: e(forget) = -||grad R_forget||^2 when D_u = D.
* per block: the inner product restricted to one parameter block (embeddings, each decoder layer, final norm,
  output head); block groups: shallow / middle / deep thirds of the decoder layers;
* per instance (PG-effect): grad R(D)^T grad log p(s_i) for each forget item s_i.

e(D) is the paper's quantity: the first-order change of R(D) per unit step of plain gradient descent
(Delta theta = -eta grad L_u). The suite trains with AdamW (a per-coordinate rescaling, weight decay, clipping), so
beside it a recorded training step also gets (``step_changes``), with Delta theta_t = theta_{t+1} - theta_t the
update the optimizer actually applied:

* realised first-order change r_t(D) = grad R(D)(theta_t)^T Delta theta_t, in total and per block (one reverse-mode
  pass at theta_t);
* one-step change m_t(D) = R(D)(theta_{t+1}) - R(D)(theta_t) (one forward at theta_{t+1}: the finite difference
  the first-order values are checked against), and the risk R(D)(theta_t) itself, so that with the risk after
  training (``GEffectRecorder.finish``) the measured change between recorded steps R(D)(theta_t') - R(D)(theta_t)
  and over the run R(D)(theta_end) - R(D)(theta_0) are known.

Both are changes of R, so POSITIVE r, m = the risk ROSE (unlearning on forget); the paper's prediction of the same
change is -eta e(D). Under SGD without momentum, weight decay or clipping, r_t = -eta e(D) up to round-off.

Two paths that agree (``tests/test_geffect.py``):

* **exact**: autograd gradients, blockwise dot products on the device. It holds grad L_u and one risk gradient at
  a time (one extra gradient beyond the objective's), no CPU copies.
* **fast**: forward-mode differentiation. ``torch.func.jvp`` of the per-item values along a direction v gives
  every v^T grad f_i in one forward-mode pass: per-item risks along grad L_u (per-item G-effects), or per-item
  forget log-likelihoods along grad R(D) (the PG-effect of every forget item at once, instead of one backward
  pass per item).

A measurement uses exact gradients for the blockwise values (one backward per data set, blocks come free) and the
fast path for per-instance values, each where it is the faster one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch.func import functional_call, jvp

from bench.data.tokenize import TokenBatch
from bench.methods.base import LossContext, Method, UnlearnBatch, answer_mask, gather_logprobs, row_mean

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_BLOCK_ORDER = re.compile(r"^layer(\d+)$")


def block_of(name: str) -> str:
    """Parameter name -> block: ``embeddings``, ``layer<i>``, ``final_norm``, ``head`` or ``other``."""
    if "embed_tokens" in name or "wte" in name or "wpe" in name:
        return "embeddings"
    match = _LAYER.search(name)
    if match:
        return f"layer{int(match.group(1))}"
    if name.startswith("lm_head") or ".lm_head" in name:
        return "head"
    if "norm" in name:
        return "final_norm"
    return "other"


def block_key(block: str) -> tuple[int, int]:
    """Sort key of block names in model order: embeddings, layer0, layer1, ..., final norm, head, other."""
    match = _BLOCK_ORDER.match(block)
    if block == "embeddings":
        return (0, 0)
    if match:
        return (1, int(match.group(1)))
    return {"final_norm": (2, 0), "head": (3, 0)}.get(block, (4, 0))


def block_groups(n_layers: int) -> dict[str, str]:
    """Decoder layer block -> ``shallow`` / ``middle`` / ``deep`` (thirds; the paper's grouping); embeddings count
    as shallow, final norm and head as deep."""
    groups = {"embeddings": "shallow", "final_norm": "deep", "head": "deep", "other": "middle"}
    for i in range(n_layers):
        groups[f"layer{i}"] = ("shallow", "middle", "deep")[min(3 * i // max(n_layers, 1), 2)]
    return groups


def trainable(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def answer_logprobs(model: torch.nn.Module, batch: TokenBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p of every next token, float answer mask), both [B, L-1-s] for the positions from s = the batch's first
    position that predicts an answer token on: the output head and log-softmax skip the prompt-only positions before
    it (``logits_to_keep``; a model that ignores the argument gets its full logits sliced, same values)."""
    mask = answer_mask(batch)
    answer_columns = mask.any(0).nonzero()
    start = int(answer_columns[0]) if len(answer_columns) else 0
    keep = batch.input_ids.shape[1] - start
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=keep).logits
    logits = logits[:, logits.shape[1] - keep: -1].float()
    shifted = TokenBatch(batch.input_ids, batch.attention_mask, batch.labels[:, start:], batch.index)
    return gather_logprobs(logits, shifted), mask[:, start:]


def per_item_nll(model: torch.nn.Module, batch: TokenBatch) -> torch.Tensor:
    """NLL(a) per row, [B]: the per-item risks."""
    return -row_mean(*answer_logprobs(model, batch))


def per_item_logprob(model: torch.nn.Module, batch: TokenBatch) -> torch.Tensor:
    """log p(s_i) = sum of answer-token log-probs per row, [B] (the PG-effect's per-instance objective)."""
    logp, mask = answer_logprobs(model, batch)
    return (logp * mask).sum(-1)


def grads_of(value: torch.Tensor, params: Sequence[torch.nn.Parameter]) -> list[torch.Tensor]:
    out = torch.autograd.grad(value, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(out, params)]


def objective_gradient(model: torch.nn.Module, method: Method, batch: UnlearnBatch,
                       ctx: LossContext) -> tuple[list[torch.Tensor], float]:
    """grad_theta L_u on ``batch`` (trainable parameters) and the loss value."""
    params = [p for _, p in trainable(model)]
    loss, _ = method.loss(model, batch, ctx)
    return grads_of(loss, params), float(loss.detach())


def risk_gradient(model: torch.nn.Module, batch: TokenBatch) -> list[torch.Tensor]:
    """grad_theta R(D) with R the mean per-item NLL of ``batch``."""
    params = [p for _, p in trainable(model)]
    return grads_of(per_item_nll(model, batch).mean(), params)


def _per_block(names: Sequence[str], values: Iterable[float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in zip(names, values):
        block = block_of(name)
        out[block] = out.get(block, 0.0) + value
    return out


def blockwise_dot(names: Sequence[str], a: Iterable[torch.Tensor], b: Iterable[torch.Tensor]) -> dict[str, float]:
    """sum over each block's parameters of <a_p, b_p> (float64 accumulation, one transfer to the host)."""
    products = [(x.double() * y.double()).sum() for x, y in zip(a, b)]
    return _per_block(names, torch.stack(products).tolist() if products else [])


def blockwise_sq_norm(names: Sequence[str], a: Iterable[torch.Tensor]) -> dict[str, float]:
    return blockwise_dot(names, a, a)


def blockwise_dot_and_sq_norm(names: Sequence[str], a: Iterable[torch.Tensor],
                              b: Iterable[torch.Tensor]) -> tuple[dict[str, float], dict[str, float]]:
    """(``blockwise_dot(a, b)``, ``blockwise_sq_norm(a)``) in one pass: each parameter of ``a`` converted to
    float64 once, one transfer to the host."""
    products = []
    for x, y in zip(a, b):
        x64 = x.double()
        products.append(torch.stack([(x64 * y.double()).sum(), (x64 * x64).sum()]))
    values = torch.stack(products).tolist() if products else []
    return _per_block(names, (v[0] for v in values)), _per_block(names, (v[1] for v in values))


def directional_derivatives(model: torch.nn.Module, fn, batch: TokenBatch,
                            direction: Sequence[torch.Tensor]) -> torch.Tensor:
    """d/d eps fn(theta + eps v)[i] at eps = 0 for every row i, i.e. v^T grad fn_i, in ONE forward-mode pass
    (``torch.func.jvp``; needs eager attention: sdpa has no forward-mode rule on CPU)."""
    named = trainable(model)
    names = [n for n, _ in named]
    primals = tuple(p.detach() for _, p in named)
    tangents = tuple(v.detach().to(p.dtype) for v, (_, p) in zip(direction, named))

    def f(*values: torch.Tensor) -> torch.Tensor:
        return fn(_Functional(model, dict(zip(names, values))), batch)

    with eager_attention(model):
        return jvp(f, primals, tangents)[1]


@dataclass
class StepChange:
    """The changes of every risk R(D) across one optimizer step (positive: the risk rose): the realised first-order
    change in total and per block, and the measured change."""

    realised: dict[str, float]  # D -> r(D) = grad R(D)(theta_t)^T (theta_{t+1} - theta_t)
    realised_blocks: dict[str, dict[str, float]]  # D -> block -> the same inner product over the block's parameters
    measured: dict[str, float]  # D -> R(D)(theta_{t+1}) - R(D)(theta_t)
    risk: dict[str, float]  # D -> R(D)(theta_t)


def step_changes(model: torch.nn.Module, before: Sequence[torch.Tensor],
                 risk_batches: dict[str, TokenBatch]) -> StepChange:
    """The changes of every R(D) across one optimizer step, the model now at theta_{t+1} and ``before`` theta_t (its
    trainable parameters, in ``trainable`` order), Delta = theta_{t+1} - theta_t: realised r(D) = grad R(D)(theta_t)^T
    Delta, per block r_b(D) = sum over the block's parameters p of <grad_p R(D)(theta_t), Delta_p> (so r = sum_b r_b),
    and measured m(D) = R(D)(theta_{t+1}) - R(D)(theta_t). grad R(D)(theta_t) is one reverse-mode pass at the
    substituted parameters theta_t (one risk gradient held at a time), R(D)(theta_{t+1}) one forward; both risks
    are evaluated with eager attention and the model in eval mode, so m has no attention-kernel or dropout noise."""
    was_training = model.training
    model.eval()
    named = trainable(model)
    names = [n for n, _ in named]
    current = [p.detach() for _, p in named]
    delta = [after - b.detach() for after, b in zip(current, before)]
    change = StepChange({}, {}, {}, {})
    for data_name, batch in risk_batches.items():
        at = [b.detach().requires_grad_(True) for b in before]
        with eager_attention(model):
            risk_before = per_item_nll(_Functional(model, dict(zip(names, at))), batch).mean()
            gradient = grads_of(risk_before, at)
            with torch.no_grad():
                risk_after = per_item_nll(model, batch).mean()
        blocks = blockwise_dot(names, gradient, delta)
        del gradient
        change.realised_blocks[data_name] = blocks
        change.realised[data_name] = sum(blocks.values())
        change.measured[data_name] = float(risk_after.double() - risk_before.detach().double())
        change.risk[data_name] = float(risk_before.detach().double())
    model.train(was_training)
    return change


class _Functional(torch.nn.Module):
    """``model`` evaluated at substituted parameters (``torch.func.functional_call``)."""

    def __init__(self, model: torch.nn.Module, params: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.inner, self.params = model, params

    def forward(self, **kwargs):
        return functional_call(self.inner, self.params, args=(), kwargs=kwargs)


class eager_attention:
    """Temporarily switch a transformers model to eager attention (forward-mode AD needs it on CPU)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.previous = getattr(getattr(model, "config", None), "_attn_implementation", None)

    def __enter__(self) -> None:
        if self.previous not in (None, "eager"):
            self.model.set_attn_implementation("eager")

    def __exit__(self, *exc) -> None:
        if self.previous not in (None, "eager"):
            self.model.set_attn_implementation(self.previous)


@dataclass
class GEffect:
    """One measurement at one step: per data set, the total, per-block values and the cosine; per forget item,
    the PG-effect on D = forget and D = retain."""

    step: int
    lr: float
    loss: float
    total: dict[str, float] = field(default_factory=dict)  # data set -> e(D)
    blocks: dict[str, dict[str, float]] = field(default_factory=dict)  # data set -> block -> e_block(D)
    cosine: dict[str, float] = field(default_factory=dict)
    objective_norm: float = 0.0
    per_instance: dict[str, list[float]] = field(default_factory=dict)  # D -> [grad R(D)^T grad log p(s_i)]
    diagnostics: dict = field(default_factory=dict)
    # across the optimizer step taken after the measurement (``step_changes``; empty outside training): D -> r, m,
    # and D -> block -> r_block
    realised_change: dict[str, float] = field(default_factory=dict)
    measured_change: dict[str, float] = field(default_factory=dict)
    realised_blocks: dict[str, dict[str, float]] = field(default_factory=dict)
    risk: dict[str, float] = field(default_factory=dict)  # D -> R(D)(theta_t), for the change between recorded steps

    def to_dict(self) -> dict:
        """The ``geffect.jsonl`` row; ``realised_change``, ``measured_change``, ``realised_blocks`` and ``risk`` only
        when recorded."""
        out = {"step": self.step, "lr": self.lr, "loss": self.loss, "total": self.total, "blocks": self.blocks,
               "cosine": self.cosine, "objective_norm": self.objective_norm, "per_instance": self.per_instance,
               "diagnostics": self.diagnostics}
        return {**out, **{k: v for k, v in (("realised_change", self.realised_change),
                                            ("measured_change", self.measured_change),
                                            ("realised_blocks", self.realised_blocks),
                                            ("risk", self.risk)) if v}}


def measure(model: torch.nn.Module, method: Method | None, objective_batch: UnlearnBatch | None,
            ctx: LossContext | None, risk_batches: dict[str, TokenBatch], instance_batch: TokenBatch | None = None,
            instance_sets: Sequence[str] = ("forget", "retain"), step: int = 0, lr: float = 0.0,
            objective_grads: Sequence[torch.Tensor] | None = None, loss: float = float("nan")) -> GEffect:
    """e(D) = grad R(D)^T grad L_u(D_u) for every D in ``risk_batches``, in total and per block (exact path),
    plus the per-instance PG-effect of every row of ``instance_batch`` on the sets ``instance_sets`` (fast path).

    ``objective_grads`` (one tensor per trainable parameter) is grad L_u when the caller has it already, e.g. the
    training step's own accumulated gradient before the optimizer applies it; otherwise it is computed from
    ``method`` on ``objective_batch``. Memory: grad L_u and one risk gradient at a time, on the model's device.
    """
    was_training = model.training
    model.eval()
    named = trainable(model)
    names = [n for n, _ in named]
    if objective_grads is None:
        assert method is not None and objective_batch is not None and ctx is not None
        g_u, loss = objective_gradient(model, method, objective_batch, ctx)
    else:
        g_u = list(objective_grads)
    u_blocks = blockwise_sq_norm(names, g_u)
    u_norm = sum(u_blocks.values()) ** 0.5
    result = GEffect(step=step, lr=lr, loss=loss, objective_norm=u_norm)
    for data_name, batch in risk_batches.items():
        g_r = risk_gradient(model, batch)
        blocks, r_blocks = blockwise_dot_and_sq_norm(names, g_r, g_u)
        r_norm = sum(r_blocks.values()) ** 0.5
        result.blocks[data_name] = blocks
        result.total[data_name] = sum(blocks.values())
        result.cosine[data_name] = result.total[data_name] / (r_norm * u_norm) if r_norm * u_norm > 0 else 0.0
        if instance_batch is not None and data_name in instance_sets:
            values = directional_derivatives(model, per_item_logprob, instance_batch, g_r)
            result.per_instance[data_name] = [float(v) for v in values]
        del g_r
    model.train(was_training)
    return result
