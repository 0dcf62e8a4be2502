"""The relearning attack (``bench.metrics.robustness``): spec validation, the seeded slice/rest split, determinism, no
mutation of the attacked model, and the property that makes it an attack: a model unlearned by gradient ascent
(which suppresses the forget answers) gets them back on the rest after relearning on the slice, far more than the
retain oracle (which never saw the forget people) learns from the slice alone."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from bench.data.sampling import EpochSampler
from bench.data.tokenize import encode_qa
from bench.methods.base import sequence_nll
from bench.metrics.robustness import RelearnSpec, relearn_attack, relearn_split

KEYS = {"relearn/forget/es", "relearn/forget/prob", "relearn/forget/es_before", "relearn/forget/prob_before",
        "relearn/n_slice", "relearn/n_rest"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mini(mini_target):
    return mini_target


def gradient_ascent(model, tokenizer, data, steps: int = 20, lr: float = 5e-4, batch_size: int = 8, seed: int = 0):
    """Plain GA: ``steps`` AdamW steps maximising the mean forget NLL (answer + EOS), on a copy."""
    model = copy.deepcopy(model)
    torch.manual_seed(seed)
    encoded = [encode_qa(tokenizer, data.config.prompt_template, q, a, add_eos=True)
               for q, a in zip(data.forget["question"], data.forget["answer"])]
    sampler = EpochSampler(encoded, batch_size, tokenizer.pad_token_id, torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        (-sequence_nll(model, sampler.next()).mean()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return model.eval()


@pytest.mark.parametrize("field,value", [
    ("fraction", 0.0), ("fraction", 1.0), ("fraction", -0.2), ("fraction", float("nan")), ("fraction", "0.5"),
    ("steps", 0), ("steps", 2.5), ("steps", True), ("lr", 0.0), ("lr", -1e-3), ("lr", float("inf")),
    ("batch_size", 0), ("batch_size", 1.0), ("seed", -1), ("seed", 0.5),
])
def test_spec_validation(field, value):
    with pytest.raises(ValueError, match=f"^{field}:"):
        RelearnSpec(**{field: value})


def test_spec_defaults():
    spec = RelearnSpec()
    assert (spec.fraction, spec.steps, spec.lr, spec.batch_size, spec.seed) == (0.25, 20, 5e-4, 8, 0)


@pytest.mark.parametrize("n,fraction,k", [(20, 0.25, 5), (2, 0.5, 1), (10, 0.01, 1), (10, 0.99, 9), (7, 0.5, 4),
                                          (100, 0.1, 10)])
def test_split_sizes_disjoint_and_covering(n, fraction, k):
    ids = [f"item/{i}" for i in range(n)]
    slice_idx, rest_idx = relearn_split(ids, fraction, seed=3)
    assert len(slice_idx) == k
    assert not set(slice_idx) & set(rest_idx)
    assert sorted(slice_idx + rest_idx) == list(range(n))
    assert slice_idx == sorted(slice_idx) and rest_idx == sorted(rest_idx)


def test_split_is_seeded_and_order_independent():
    ids = [f"people/p{i}/attr{j}" for i in range(5) for j in range(8)]
    chosen = {ids[i] for i in relearn_split(ids, 0.25, seed=0)[0]}
    assert chosen == {ids[i] for i in relearn_split(ids, 0.25, seed=0)[0]}
    shuffled = ids[:]
    random.Random(1).shuffle(shuffled)
    assert chosen == {shuffled[i] for i in relearn_split(shuffled, 0.25, seed=0)[0]}
    others = [{ids[i] for i in relearn_split(ids, 0.25, seed=s)[0]} for s in (1, 2, 3)]
    assert any(o != chosen for o in others)


def test_split_errors():
    with pytest.raises(ValueError, match="fraction"):
        relearn_split(["a", "b"], 1.0, 0)
    with pytest.raises(ValueError, match="at least 2"):
        relearn_split(["a"], 0.5, 0)
    with pytest.raises(ValueError, match="distinct"):
        relearn_split(["a", "a", "b"], 0.5, 0)


def test_attack_is_deterministic_and_leaves_the_model_alone(mini, mini_data):
    model, tokenizer = mini
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    rng = torch.random.get_rng_state()
    spec = RelearnSpec(steps=4)
    first = relearn_attack(model, tokenizer, mini_data, spec)
    second = relearn_attack(model, tokenizer, mini_data, spec)
    assert first == second
    assert set(first) == KEYS and all(isinstance(v, float) for v in first.values())
    assert first["relearn/n_slice"] == 5.0 and first["relearn/n_rest"] == 15.0  # 20 forget items, fraction 0.25
    after = model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.random.get_rng_state(), rng)  # the seeding happens in a forked RNG state
    # the attack trains: another learning rate gives other numbers
    assert relearn_attack(model, tokenizer, mini_data, RelearnSpec(steps=4, lr=3e-3)) != first


def test_before_values_are_the_model_itself(mini, mini_data):
    """ES/Prob before = teacher-forced scores of the untouched model on the rest (the target knows them)."""
    model, tokenizer = mini
    result = relearn_attack(model, tokenizer, mini_data, RelearnSpec(steps=1))
    assert result["relearn/forget/es_before"] > 0.9
    assert result["relearn/forget/prob_before"] > 0.9


def test_relearning_recovers_gradient_ascent_not_the_oracle(mini, mini_data):
    """GA suppresses the forget answers; relearning on the slice brings the rest back (ES and Prob rise well above
    their before values), while the retain oracle, which never learned the forget people, gains far less."""
    from bench.models.tiny import get_model

    model, tokenizer = mini
    unlearned = gradient_ascent(model, tokenizer, mini_data)
    ga = relearn_attack(unlearned, tokenizer, mini_data)
    assert ga["relearn/forget/es_before"] < 0.3  # GA did unlearn (the target is at ~1.0)
    assert ga["relearn/forget/es"] > ga["relearn/forget/es_before"] + 0.1
    assert ga["relearn/forget/prob"] > ga["relearn/forget/prob_before"] + 0.2
    oracle = relearn_attack(get_model(mini_data, "oracle").load(), tokenizer, mini_data)
    es_gain = {name: r["relearn/forget/es"] - r["relearn/forget/es_before"] for name, r in (("ga", ga),
                                                                                           ("oracle", oracle))}
    assert es_gain["ga"] > es_gain["oracle"] + 0.1
    assert ga["relearn/forget/prob"] - ga["relearn/forget/prob_before"] > \
        2 * (oracle["relearn/forget/prob"] - oracle["relearn/forget/prob_before"])
