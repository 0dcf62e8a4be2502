"""GradNorm MIA scores (MUSE, arXiv 2407.06460; open-unlearning's GradNormAttack): both per-item statistics of
grad NLL(x) from ``torch.func.vmap`` -- the mean over parameter tensors of each tensor's L2 norm (open-unlearning,
``mia_gradnorm``) and the global L2 norm (``mia_gradnorm_l2``) -- against a loop of single-item ``loss.backward()``
passes, against a hand computation from ``.grad``, side effects, and member vs non-member separation on the mini
target."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.data.tokenize import Encoded, collate, encode_qa
from bench.geffect.compute import per_item_nll, trainable
from bench.metrics.gradnorm import GLOBAL_L2, GRAD_NORMS, TENSOR_MEAN, gradnorm_score, per_item_grad_norms

from .conftest import random_llama

PAD = 0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mini(mini_target):
    return mini_target


def encode_rows(tokenizer, data, ds, n: int | None = None) -> list[Encoded]:
    rows = list(zip(ds["question"], ds["answer"]))[:n]
    return [encode_qa(tokenizer, data.config.prompt_template, q, a, add_eos=False) for q, a in rows]


def backward_loop_norms(model: torch.nn.Module, encoded: list[Encoded]) -> tuple[np.ndarray, np.ndarray]:
    """Reference: one ``loss.backward()`` per item (NLL of the unpadded item), norms read from ``.grad`` as
    open-unlearning's GradNormAttack does: (a) the mean over the parameters with a ``.grad`` of each one's
    ``.grad.norm(p=2)``, (b) the square root of the sum of squares of every gradient entry (one global L2 norm).
    Eager attention, as the vmap path uses (CPU sdpa differs by ~1e-6 in the logits)."""
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    params = [p for _, p in trainable(model)]
    tensor_mean, global_l2 = [], []
    try:
        for e in encoded:
            model.zero_grad(set_to_none=True)
            per_item_nll(model, collate([e], PAD)).sum().backward()
            grads = [p.grad.double() for p in params if p.grad is not None]
            tensor_mean.append(float(torch.stack([g.norm(p=2) for g in grads]).mean()))
            global_l2.append(sum(float(g.square().sum()) for g in grads) ** 0.5)
    finally:
        model.zero_grad(set_to_none=True)
        model.set_attn_implementation(previous)
    return np.array(tensor_mean), np.array(global_l2)


def twelve_items(tokenizer, data) -> list[Encoded]:
    """12 items of different lengths from forget, holdout and world facts (members and non-members)."""
    items = encode_rows(tokenizer, data, data.forget, 4) + encode_rows(tokenizer, data, data.holdout, 4) \
        + encode_rows(tokenizer, data, data.world_facts, 4)
    assert len({len(e.ids) for e in items}) >= 4
    return items


def test_matches_backward_loop_on_mini_target(mini, mini_data):
    model, tokenizer = mini
    items = twelve_items(tokenizer, mini_data)
    tensor_mean, global_l2 = backward_loop_norms(model, items)
    assert np.all(np.abs(tensor_mean / global_l2 - 1) > 0.1)  # two different statistics
    for chunk_size in (1, 5, 16):
        got = per_item_grad_norms(model, items, tokenizer.pad_token_id, chunk_size=chunk_size)
        assert got.dtype == GRAD_NORMS and got.shape == (len(items),)
        np.testing.assert_allclose(got[TENSOR_MEAN], tensor_mean, rtol=1e-5)
        np.testing.assert_allclose(got[GLOBAL_L2], global_l2, rtol=1e-5)


def test_hand_computed_norm_of_one_item():
    """A random float64 Llama, one hand-made item: from ``.grad`` of the mean answer NLL via the HF loss, the mean
    of the K parameter tensors' L2 norms and the global L2 norm."""
    model = random_llama(3, init_std=0.1).double()
    model.set_attn_implementation("eager")  # the attention the vmap path uses (CPU sdpa differs by ~1e-6)
    item = Encoded((1, 7, 9, 11, 13, 17, 19, 23), n_prompt=4)  # 4 answer tokens
    batch = collate([item], PAD)
    # HF's loss: mean over the (shifted) answer labels = the item's mean answer-token NLL
    model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss.backward()
    norms = [math.sqrt(float(p.grad.square().sum())) for p in model.parameters()]
    assert len(norms) == len(list(model.named_parameters()))  # every parameter reached by the loss has a .grad
    tensor_mean = sum(norms) / len(norms)
    global_l2 = math.sqrt(sum(n * n for n in norms))
    model.zero_grad(set_to_none=True)
    got = per_item_grad_norms(model, [item], PAD)
    # float64 model; RMSNorm rounds through float32
    assert got[TENSOR_MEAN][0] == pytest.approx(tensor_mean, rel=1e-6)
    assert got[GLOBAL_L2][0] == pytest.approx(global_l2, rel=1e-6)


def test_padding_order_and_empty_answers():
    """Items of very different lengths in any chunking give their own norm, in input order; an item without
    answer tokens has norm 0; an empty list gives an empty array."""
    model = random_llama(4, init_std=0.1).double()
    items = [Encoded(tuple(range(1, 4 + k)), n_prompt=2 + k % 3) for k in (9, 1, 5, 12, 3)]
    items.append(Encoded((1, 5, 6), n_prompt=3))  # no answer token
    single = np.concatenate([per_item_grad_norms(model, [e], PAD) for e in items])
    for chunk_size in (2, 4, 32):
        got = per_item_grad_norms(model, items, PAD, chunk_size=chunk_size)
        for field in (TENSOR_MEAN, GLOBAL_L2):
            # not 1e-12: LlamaRMSNorm rounds through float32 even in a float64 model, so last-bit differences of a
            # padded matmul can flip a float32 ulp
            np.testing.assert_allclose(got[field], single[field], rtol=1e-6)
    for field in (TENSOR_MEAN, GLOBAL_L2):
        assert single[field][-1] == 0.0 and np.all(single[field][:-1] > 0)
    assert per_item_grad_norms(model, [], PAD).shape == (0,)
    with pytest.raises(ValueError, match="chunk_size"):
        per_item_grad_norms(model, items, PAD, chunk_size=0)


def test_no_side_effects(mini, mini_data):
    """No ``.grad`` written, parameters unchanged, train/eval mode and attention implementation restored."""
    model, tokenizer = mini
    items = twelve_items(tokenizer, mini_data)[:3]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attention = model.config._attn_implementation
    for training in (True, False):
        model.train(training)
        per_item_grad_norms(model, items, tokenizer.pad_token_id)
        assert model.training is training
        assert all(m.training is training for m in model.modules())
        assert model.config._attn_implementation == attention
        assert all(p.grad is None for p in model.parameters())
    model.eval()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_members_have_smaller_gradients(mini, mini_data):
    """On the mini target, forget items (trained) have smaller grad norms than holdout items (never trained), in
    both statistics: on average and as an attack (AUC of -G, members = positives, well above chance)."""
    from sklearn.metrics import roc_auc_score

    model, tokenizer = mini
    members = per_item_grad_norms(model, encode_rows(tokenizer, mini_data, mini_data.forget),
                                  tokenizer.pad_token_id)
    others = per_item_grad_norms(model, encode_rows(tokenizer, mini_data, mini_data.holdout),
                                 tokenizer.pad_token_id)
    for field in (TENSOR_MEAN, GLOBAL_L2):
        assert members[field].mean() < others[field].mean()
        scores = gradnorm_score(np.concatenate([members[field], others[field]]))
        auc = roc_auc_score([1] * len(members) + [0] * len(others), scores)
        assert auc > 0.9, field


def test_gradnorm_score_orientation():
    np.testing.assert_array_equal(gradnorm_score(np.array([0.5, 2.0])), [-0.5, -2.0])
    assert gradnorm_score([0.1])[0] > gradnorm_score([3.0])[0]  # smaller gradient = more member-like


def test_registered_metrics_read_their_own_statistic():
    """``mia_gradnorm`` (open-unlearning's per-tensor mean) and ``mia_gradnorm_l2`` (global L2) read their own field
    of ``SplitScores.grad_norm`` and negate it; both are defined on the membership roles only and need grad_norm."""
    from bench.metrics.engine import SplitScores
    from bench.registry import METRICS

    norms = np.array([(0.5, 2.0), (1.5, 7.0)], dtype=GRAD_NORMS)
    scores = SplitScores(split="forget", role="forget", ids=["a", "b"], answers=["x", "y"], answer=[],
                         paraphrase_nll=None, perturbed_nll=None, generations=None, grad_norm=norms)
    np.testing.assert_array_equal(METRICS.get("mia_gradnorm").per_item(scores), [-0.5, -1.5])
    np.testing.assert_array_equal(METRICS.get("mia_gradnorm_l2").per_item(scores), [-2.0, -7.0])
    for name in ("mia_gradnorm", "mia_gradnorm_l2"):
        metric = METRICS.get(name)
        assert metric.applies(scores) and metric.requires == "grad_norm"
        scores.grad_norm = None
        assert not metric.applies(scores)
        scores.grad_norm = norms
    for name in ("mia_auc_gradnorm", "privleak_gradnorm", "mia_auc_gradnorm_l2", "privleak_gradnorm_l2"):
        assert name in METRICS.names()
