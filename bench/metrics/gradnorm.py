"""GradNorm membership-inference scores: the gradient norm of each item's answer loss (MUSE, Shi et al. 2024,
arXiv 2407.06460; open-unlearning's ``GradNormAttack``; the score family of "gradient-based" MIAs).

For an item x = (q, a) with T answer tokens and NLL(x) = -(1/T) sum_t log p_theta(a_t | q, a_<t) (the mean
answer-token negative log-likelihood, the same per-item risk as everywhere else in the benchmark), and g_k(x) =
grad_{theta_k} NLL(x) the gradient of the k-th of the K trainable parameter tensors theta_1 .. theta_K, two
statistics of the same gradient:

    G(x)    = (1/K) sum_k || g_k(x) ||_2           the mean over parameter tensors of each tensor's L2 norm:
                                                  open-unlearning's GradNorm attack (p = 2), ``mia_gradnorm``
    G_2(x)  = sqrt( sum_k || g_k(x) ||_2^2 )       one global L2 norm over all parameters, ``mia_gradnorm_l2``

They are different statistics (G weighs a small tensor such as a norm's scale vector as much as an embedding
matrix) and give different AUCs; only G is comparable with open-unlearning's published GradNorm numbers. K counts
every parameter with ``requires_grad`` (open-unlearning: every parameter whose ``.grad`` is not None after the
backward pass; the same set for the models here, where every trainable tensor is reached by the loss -- a trainable
tensor the loss never reaches would count here as a zero norm and there not at all). Tied weights count once
(``named_parameters`` yields a shared tensor once, as ``parameters()`` does).

Training drives the loss of a member towards a minimum, where its gradient is small: members have *smaller* norms
than non-members. ``gradnorm_score`` = -G(x) (or -G_2(x)) orients the score like the other MIA scores of
``bench.metrics.privacy`` (*higher = more member-like*), so it plugs into the same AUC / PrivLeak formulas.

Unlike the LOSS / zlib / Min-K% scores it needs one gradient per item, which the engine's one-forward-pass-per-split
design excludes; this module computes it separately, and both statistics from the one gradient of each item.

How: per-example gradients with ``torch.func`` -- ``vmap(grad(NLL))`` over ``functional_call`` of the model at
its own (detached) parameters, chunk by chunk over the items sorted by length (so each chunk pads little). Each
vmapped call returns only the K squared tensor norms ||g_k||^2 (each summed in the parameters' dtype, float32 for
the models here, then float64), from which G and G_2 are formed in float64.
``vmap`` needs eager attention (sdpa has no batching rule on CPU) and an explicit attention mask; the model is
switched to eager attention and to eval mode for the computation and restored afterwards. Nothing is written to
``.grad``. Right padding with a causal mask leaves every real position's logits unchanged, so a chunk gives the same
norms as one item at a time: ``tests/test_gradnorm.py`` checks both statistics against a loop of single-item
backward passes to 1e-5 relative (measured: 1e-7). The reference loop must use eager attention too: with PyTorch's
CPU sdpa kernel the logits differ from eager attention by ~1e-6 (measured on the mini target, even in float64),
which moves the small gradient norms of memorised items by ~1e-5 relative.

Speed (CPU, one thread, 300 QA items): synthetic-mini target (0.26M parameters) 0.52 s at ``chunk_size`` 16 vs
1.37 s for the loop of backward passes; synthetic target (1.6M parameters) 2.0 s vs 3.8 s. Larger chunks stop
paying off on the larger model (32: 2.3 s), hence the default of 16.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from bench.data.tokenize import IGNORE, Encoded, collate
from bench.geffect.compute import eager_attention, trainable
from bench.runtime.device import adaptive_batches

# the two statistics of each item's gradient returned by ``per_item_grad_norms`` (fields of its structured array)
TENSOR_MEAN = "tensor_mean"  # G: mean over parameter tensors of each tensor's L2 norm (open-unlearning)
GLOBAL_L2 = "global_l2"  # G_2: one L2 norm over all parameters
GRAD_NORMS = np.dtype([(TENSOR_MEAN, np.float64), (GLOBAL_L2, np.float64)])
GRADIENT_MEMORY = 2 * 2**30  # bytes of per-item gradients held at once (chunk size x parameter bytes)
MAX_CHUNK = 16


def default_chunk_size(params: Sequence[torch.Tensor]) -> int:
    """Items per vmap chunk: as many per-item gradients as fit in ``GRADIENT_MEMORY`` (at most ``MAX_CHUNK``, at
    least 1): 16 for the tiny models, 3 for SmolLM2-135M in fp32, 1 for a 7B model (one gradient at a time)."""
    size = sum(p.numel() * p.element_size() for p in params)
    return max(1, min(MAX_CHUNK, GRADIENT_MEMORY // max(size, 1)))


def _answer_nll(model: torch.nn.Module, values: dict[str, torch.Tensor], ids: torch.Tensor, attention: torch.Tensor,
                labels: torch.Tensor, start: int) -> torch.Tensor:
    """NLL(x) of one (unbatched) item at parameters ``values``: the mean over its answer tokens (``labels`` not
    ``IGNORE``) of -log p(a_t | q, a_<t); the output head computes only the positions from ``start`` on."""
    keep = ids.shape[0] - start
    logits = functional_call(model, values, args=(), kwargs={
        "input_ids": ids.unsqueeze(0), "attention_mask": attention.unsqueeze(0),
        "logits_to_keep": keep}).logits[0]
    logits = logits[logits.shape[0] - keep: -1]  # predicts positions start+1 .. L-1
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    targets = labels[start + 1:]
    mask = (targets != IGNORE).float()
    logp = -torch.nn.functional.cross_entropy(logits, targets.clamp_min(0), reduction="none")
    return -(logp * mask).sum() / mask.sum().clamp_min(1.0)


def _squared_norms(model: torch.nn.Module, values: dict[str, torch.Tensor], ids: torch.Tensor,
                   attention: torch.Tensor, labels: torch.Tensor, start: int) -> torch.Tensor:
    """(K,) ||g_k||^2 in float64: the squared norm of each parameter tensor's gradient of ``_answer_nll``."""
    def nll(values: dict[str, torch.Tensor]) -> torch.Tensor:
        return _answer_nll(model, values, ids, attention, labels, start)

    grads = grad(nll)(values)
    return torch.stack([g.square().sum() for g in grads.values()]).double()


def _chunk_norms(model: torch.nn.Module, params: dict[str, torch.Tensor], encoded: Sequence[Encoded],
                 rows: list[int], pad_id: int, out: np.ndarray) -> None:
    """Write G and G_2 of the items ``rows`` of ``encoded`` into ``out``, from one vmapped call over the chunk."""
    device = next(iter(params.values())).device
    batch = collate([encoded[i] for i in rows], pad_id).to(device)
    # first position whose next token is an answer token, over the chunk: the output head skips the
    # prompt-only positions before it (same values: the logits of kept positions are unchanged)
    start = max(0, min(encoded[i].n_prompt for i in rows) - 1)
    squares = vmap(partial(_squared_norms, model), in_dims=(None, 0, 0, 0, None))(
        params, batch.input_ids, batch.attention_mask, batch.labels, start).cpu().numpy()  # (B, K)
    out[TENSOR_MEAN][rows] = np.sqrt(squares).mean(axis=1)
    out[GLOBAL_L2][rows] = np.sqrt(squares.sum(axis=1))


def per_item_grad_norms(model: torch.nn.Module, encoded: Sequence[Encoded], pad_id: int,
                        chunk_size: int | None = None) -> np.ndarray:
    """Both gradient-norm statistics of every item of ``encoded``, in input order, from one gradient per item: a
    structured array of dtype ``GRAD_NORMS``, shape (n,), with fields ``TENSOR_MEAN`` (G(x) = (1/K) sum_k
    ||grad_{theta_k} NLL(x)||_2, open-unlearning's GradNorm) and ``GLOBAL_L2`` (G_2(x) = ||grad_theta NLL(x)||_2
    over all parameters at once), both float64.

    NLL(x) is the mean answer-token NLL of the item (``Encoded.n_prompt`` marks where the answer starts; an item
    without answer tokens has NLL 0 and both norms 0). theta = every parameter with ``requires_grad``. Items are sorted
    by length and processed ``chunk_size`` at a time (memory: ``chunk_size`` per-item gradients at once; default
    ``default_chunk_size``, halved on a GPU out-of-memory error). The
    model is left unchanged, in its original train/eval mode and attention implementation, and no ``.grad`` is
    touched.
    """
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size: must be >= 1, got {chunk_size}")
    out = np.zeros(len(encoded), dtype=GRAD_NORMS)
    if not encoded:
        return out
    named = trainable(model)
    if not named:
        raise ValueError("model has no trainable parameters")
    chunk_size = chunk_size or default_chunk_size([p for _, p in named])
    params = {name: p.detach() for name, p in named}
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
    was_training = model.training
    model.eval()
    try:
        with eager_attention(model), torch.enable_grad():
            adaptive_batches(order, chunk_size, lambda rows: _chunk_norms(model, params, encoded, rows, pad_id, out))
    finally:
        model.train(was_training)
    return out


def gradnorm_score(norms: np.ndarray) -> np.ndarray:
    """GradNorm MIA score -G(x) of one statistic's norms (a field of ``per_item_grad_norms``' result: G or G_2)
    (MUSE, arXiv 2407.06460): *higher = more member-like*, the convention of the other MIA scores in
    ``bench.metrics.privacy`` (members sit near a loss minimum, so their gradients are small)."""
    return -np.asarray(norms, dtype=np.float64)
