"""The scoring engine: the only place that runs a model for evaluation.

Per (model, split) it runs exactly one teacher-forced pass over every sequence any metric needs (the answer, the
paraphrased answer and the perturbed answers of every item, batched together by length) and one batched greedy
generation; metrics then read ``SplitScores`` and never touch the model.

Why extraction strength needs no extra decoding: greedy decoding from ``[q, a_<k]`` reproduces ``a_>=k`` exactly
iff, for every j >= k, the argmax of p(. | q, a_<j) equals a_j, because each step of that decoding sees exactly the
teacher-forced context ``[q, a_<j]`` while it stays on the answer. So the teacher-forced argmax matches give the
greedy-prefix ES of arXiv 2406.09179 exactly (``tests/test_metrics.py`` checks it against literal decoding).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from bench.data.tokenize import Encoded, encode_prompt, encode_qa
from bench.metrics.packing import PACKABLE_ATTENTION, answer_logits, collate_packs, packs_of
from bench.runtime.device import adaptive_batches, runtime

if TYPE_CHECKING:  # the datasets library loads where a task's data is built
    from datasets import Dataset


@dataclass
class TokenScores:
    """Teacher-forced results of one sequence's answer tokens (EOS excluded).

    ``mu`` and ``sigma`` are the Min-K%++ statistics of the full next-token distribution p = p(. | q, a_<i) at each
    answer position (Zhang et al. 2024, arXiv 2404.02936): mu_i = E_{z~p}[log p(z)] = sum_z p(z) log p(z) (minus the
    entropy) and sigma_i = sqrt(Var_{z~p}[log p(z)]) = sqrt(sum_z p(z) (log p(z) - mu_i)^2). They are ``None`` when
    the scores were built without them (hand-made scores, ``teacher_forced(..., moments=False)``).
    """

    logprobs: np.ndarray  # log p(a_i | q, a_<i), float64
    argmax_match: np.ndarray  # argmax_v p(v | q, a_<i) == a_i
    mu: np.ndarray | None = None  # E_{z~p(.|q,a_<i)} log p(z), float64
    sigma: np.ndarray | None = None  # std_{z~p(.|q,a_<i)} log p(z), float64

    @property
    def mean_nll(self) -> float:
        return float(-self.logprobs.mean())


@dataclass
class SplitScores:
    """Everything metrics need about one model on one split.

    ``role`` is forget | retain | holdout | utility (QA splits) or text (free-text splits: ``answer`` scores the whole
    text given its prompt, ``answers`` are the reference continuations and ``generations`` the greedy continuations
    of prompt + prefix; QA-only fields are None). ``lexicon`` is the task's vocabulary of words (gibberish rate)."""

    split: str
    role: str
    ids: list[str]
    answers: list[str]
    answer: list[TokenScores]
    paraphrase_nll: np.ndarray | None  # (n,) mean answer-token NLL of the paraphrased answer
    perturbed_nll: np.ndarray | None  # (n, k) the same for each perturbed answer
    generations: list[str] | None  # None when the split was scored without a generation
    # the true answer after the PARAPHRASED question (robustness of forgetting to rephrased prompts); None when the
    # split has no paraphrased questions
    answer_rephrased: list[TokenScores] | None = None
    lexicon: frozenset[str] | None = None
    # per-item gradient norms of the answer NLL (GradNorm MIA); only on the membership splits, when requested
    grad_norm: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class CostLedger:
    """What the engine computed during an evaluation, for ``ubench perf --only eval``: per split, the unpadded
    token length of every sequence of each product ("answer", "paraphrase", "perturbed", "rephrased"), the prompt
    and generated lengths of the greedy generation, and the ``reads`` of every metric evaluated on it."""

    batch_size: int = 0
    products: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    generations: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)
    reads: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)


_LEDGER: ContextVar[CostLedger | None] = ContextVar("cost_ledger", default=None)


@contextmanager
def cost_ledger() -> Iterator[CostLedger]:
    """Record what the engine computes inside the block into the yielded ledger."""
    ledger = CostLedger()
    token = _LEDGER.set(ledger)
    try:
        yield ledger
    finally:
        _LEDGER.reset(token)


def active_ledger() -> CostLedger | None:
    return _LEDGER.get()


def _moments(logp: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Min-K%++ moments of each row's distribution from its log-probs: mu = sum_z p(z) log p(z) and
    sigma = sqrt(sum_z p(z) (log p(z) - mu)^2), p = exp(log p), in float64 (terms with p(z) = 0 contribute 0)."""
    p = logp.exp()
    finite = p > 0
    mu = torch.where(finite, p * logp, 0.0).double().sum(-1)
    centred = torch.where(finite, logp.double() - mu.unsqueeze(-1), 0.0)
    var = (p.double() * centred.square()).sum(-1)
    return mu.cpu().numpy(), var.clamp_min(0.0).sqrt().cpu().numpy()


@torch.inference_mode()
def teacher_forced(model, encoded: Sequence[Encoded], pad_id: int, batch_size: int,
                   moments: bool | Sequence[bool] = True) -> list[TokenScores]:
    """Per-token answer log-probs, argmax matches and (``moments``) the Min-K%++ mean and standard deviation of
    log p(z) under the next-token distribution, for every sequence (``moments``: a bool, or one per sequence),
    in input order.

    Sequences that share a prompt (an item's answer, paraphrased and perturbed answers) are packed into one row
    (``bench.metrics.packing``) whose mask and position ids give each answer exactly the context of its own
    sequence, so the prompt is run once; with a kernel that takes no 4D mask each sequence gets its own row. Rows
    are sorted by length before batching so padding stays small. The log-softmax is taken only at answer
    positions and the moments reuse it (``_moments``).
    """
    device = next(model.parameters()).device
    with_moments = [bool(moments)] * len(encoded) if isinstance(moments, bool) else list(moments)
    share = getattr(getattr(model, "config", None), "_attn_implementation", None) in PACKABLE_ATTENTION
    packs = packs_of(encoded, share)
    order = sorted(range(len(packs)), key=lambda i: packs[i].length)
    out: list[TokenScores | None] = [None] * len(encoded)

    def score(rows: list[int]) -> None:
        batch = collate_packs([packs[i] for i in rows], pad_id, device)
        with runtime().autocast_context():
            logits = answer_logits(model, batch, share).float()  # (answer tokens, vocab)
        answer_targets = batch.targets
        logp_all = torch.log_softmax(logits, dim=-1)
        logprobs = logp_all.gather(-1, answer_targets.unsqueeze(-1)).squeeze(-1).double().cpu().numpy()
        match = (logits.argmax(-1) == answer_targets).cpu().numpy()
        wanted = [(i, lo, hi) for i, lo, hi in batch.bounds if with_moments[i]]
        mu = sigma = at = None
        if wanted:  # the moments of the sequences that asked for them only (row-wise: the same values)
            at = {i: sum(hi - lo for _, lo, hi in wanted[:k]) for k, (i, _, _) in enumerate(wanted)}
            rows_ = torch.cat([torch.arange(lo, hi) for _, lo, hi in wanted]).to(device)
            mu, sigma = _moments(logp_all[rows_])
        for i, lo, hi in batch.bounds:
            if at is not None and i in at:
                a = at[i]
                out[i] = TokenScores(logprobs[lo:hi], match[lo:hi], mu[a: a + hi - lo], sigma[a: a + hi - lo])
            else:
                out[i] = TokenScores(logprobs[lo:hi], match[lo:hi])

    adaptive_batches(order, batch_size, score)  # halves the batch on a GPU out-of-memory error
    return out  # type: ignore[return-value]


@torch.inference_mode()
def greedy_generate(model, tokenizer, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                    batch_size: int, lengths: list[int] | None = None) -> list[str]:
    """Greedy continuations of left-padded prompts, decoded up to EOS, special tokens removed, stripped.
    ``lengths``, when given, receives the number of tokens each prompt generated (EOS included)."""
    device = next(model.parameters()).device
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    generated = [0] * len(prompts)
    def generate(rows: list[int]) -> None:
        width = max(len(prompts[i]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            p = torch.tensor(prompts[i], dtype=torch.long)
            ids[r, width - len(p):] = p
            attention[r, width - len(p):] = 1
        with runtime().autocast_context():
            gen = model.generate(input_ids=ids.to(device), attention_mask=attention.to(device), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos, num_beams=1)
        for r, i in enumerate(rows):
            new = gen[r, width:].tolist()
            generated[i] = new.index(eos) + 1 if eos in new else len(new)
            if eos in new:
                new = new[: new.index(eos)]
            out[i] = tokenizer.decode(new, skip_special_tokens=True).strip()

    adaptive_batches(order, batch_size, generate)
    if lengths is not None:
        lengths[:] = generated
    return out


QA_PRODUCTS = ("answer", "paraphrase", "perturbed", "rephrased", "generation")
_ENCODED: dict[tuple, list[Encoded]] = {}  # (tokenizer, template, data fingerprint, products) -> sequences


def _encoded_once(key: tuple, build) -> list[Encoded]:
    """Tokenising ~4000 sequences costs ~0.4 s and every evaluation of a run (final, calibrated, per request)
    scores the same items: encode once per process (a small cache; the key names the tokenizer's files)."""
    if key not in _ENCODED:
        if len(_ENCODED) > 64:
            _ENCODED.clear()
        _ENCODED[key] = build()
    return _ENCODED[key]


@dataclass(frozen=True)
class _QALayout:
    """Where one item's sequences sit among its ``width`` consecutive sequences of a QA split: the answer at 0,
    the paraphrased answer at 1 (``with_para``), the ``k`` perturbed answers from ``first`` = 1 + with_para, and the
    answer after the paraphrased question last (``with_rephrased``)."""

    with_para: bool
    k: int
    with_rephrased: bool

    @property
    def first(self) -> int:
        return 1 + self.with_para

    @property
    def width(self) -> int:
        return 1 + self.with_para + self.k + self.with_rephrased


def _encode_items(tokenizer, template: str, ds: Dataset, split: str, perturbed: Sequence[Sequence[str]],
                  layout: _QALayout) -> list[Encoded]:
    """The ``layout.width`` sequences of every item of ``ds``, item after item (``_QALayout``)."""
    paraphrases = ds["paraphrased_answer"] if layout.with_para else None
    rephrased = ds["paraphrased_question"] if layout.with_rephrased else None
    out: list[Encoded] = []
    for i, (q, a, perts) in enumerate(zip(ds["question"], ds["answer"], perturbed)):
        if len(perts) != layout.k:
            raise ValueError(f"split {split}: every item needs {layout.k} perturbed answers")
        texts = (a, *((paraphrases[i],) if layout.with_para else ()), *perts)
        out += [encode_qa(tokenizer, template, q, text, add_eos=False) for text in texts]
        if layout.with_rephrased:
            out.append(encode_qa(tokenizer, template, rephrased[i], a, add_eos=False))
    return out


def _ledger_lengths(ledger: CostLedger, split: str, encoded: Sequence[Encoded], layout: _QALayout, n: int,
                    with_perturbed: bool) -> None:
    """Record in ``ledger`` the token lengths of every scored sequence of ``split``, by product."""
    lengths = [len(e.ids) for e in encoded]
    width, first, k = layout.width, layout.first, layout.k
    ledger.products[split] = {"answer": lengths[0::width]}
    if layout.with_para:
        ledger.products[split]["paraphrase"] = lengths[1::width]
    if with_perturbed:
        ledger.products[split]["perturbed"] = [lengths[i * width + first + j] for i in range(n) for j in range(k)]
    if layout.with_rephrased:
        ledger.products[split]["rephrased"] = lengths[first + k::width]


def score_split(model, tokenizer, template: str, ds: Dataset, split: str, role: str, batch_size: int,
                max_new_tokens: int, lexicon: frozenset[str] | None = None,
                products: Sequence[str] = QA_PRODUCTS) -> SplitScores:
    """One teacher-forced pass over the ``products`` of every item of ``ds`` (the answer, the paraphrased answer,
    the perturbed answers and the answer after the paraphrased question, all together) and, when "generation" is
    one of them, one greedy generation. Products left out are None in the result, and the metrics that read them
    do not apply to the split."""
    unknown = set(products) - set(QA_PRODUCTS)
    if "answer" not in products or unknown:
        raise ValueError(f"split {split}: products must include 'answer' and be among {QA_PRODUCTS}, got {products}")
    questions, answers = ds["question"], ds["answer"]
    with_perturbed = "perturbed" in products
    perturbed = ds["perturbed_answers"] if with_perturbed else [[] for _ in answers]
    layout = _QALayout("paraphrase" in products, len(perturbed[0]) if len(ds) else 0,
                       "rephrased" in products and "paraphrased_question" in ds.column_names)
    width, first, k = layout.width, layout.first, layout.k
    encoded = _encoded_once((tokenizer.name_or_path, len(tokenizer), template, ds._fingerprint, split, width,
                             tuple(products)), lambda: _encode_items(tokenizer, template, ds, split, perturbed, layout))
    # Min-K%++ reads the answer's moments only: the other products skip them
    scores = teacher_forced(model, encoded, tokenizer.pad_token_id, batch_size,
                            moments=[i % width == 0 for i in range(len(encoded))])
    n = len(ds)
    paraphrase_nll = np.array([s.mean_nll for s in scores[1::width]]) if layout.with_para else None
    perturbed_nll = (np.array([[scores[i * width + first + j].mean_nll for j in range(k)] for i in range(n)])
                     .reshape(n, k) if with_perturbed else None)
    answer_rephrased = scores[first + k::width] if layout.with_rephrased else None
    generations = None
    generated: list[int] = []
    prompts: list[list[int]] = []
    if "generation" in products:
        prompts = [encode_prompt(tokenizer, template, q) for q in questions]
        generations = greedy_generate(model, tokenizer, prompts, max_new_tokens, batch_size, generated)
    ledger = active_ledger()
    if ledger is not None:
        ledger.batch_size = batch_size
        _ledger_lengths(ledger, split, encoded, layout, n, with_perturbed)
        if generations is not None:
            ledger.generations[split] = ([len(p) for p in prompts], generated)
    return SplitScores(split, role, list(ds["id"]), list(answers), scores[0::width], paraphrase_nll, perturbed_nll,
                       generations, answer_rephrased, lexicon)


def score_text_split(model, tokenizer, template: str, ds: Dataset, split: str, batch_size: int,
                     max_new_tokens: int, lexicon: frozenset[str] | None = None) -> SplitScores:
    """A free-text split (MUSE VerbMem): one teacher-forced pass over each whole text given its prompt, and one
    greedy generation from ``[prompt, prefix]`` compared with the true ``continuation``."""
    questions = ds["question"]
    encoded = [encode_qa(tokenizer, template, q, text, add_eos=False) for q, text in zip(questions, ds["text"])]
    scores = teacher_forced(model, encoded, tokenizer.pad_token_id, batch_size)
    prompts = [encode_prompt(tokenizer, template, q) + tokenizer(" " + prefix, add_special_tokens=False)["input_ids"]
               for q, prefix in zip(questions, ds["prefix"])]
    generated: list[int] = []
    generations = greedy_generate(model, tokenizer, prompts, max_new_tokens, batch_size, generated)
    ledger = active_ledger()
    if ledger is not None:
        ledger.batch_size = batch_size
        ledger.products[split] = {"answer": [len(e.ids) for e in encoded]}
        ledger.generations[split] = ([len(p) for p in prompts], generated)
    return SplitScores(split, "text", list(ds["id"]), list(ds["continuation"]), scores, None, None, generations,
                       None, lexicon)
