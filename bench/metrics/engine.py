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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset

from bench.data.tokenize import Encoded, collate, encode_prompt, encode_qa


@dataclass
class TokenScores:
    """Teacher-forced results of one sequence's answer tokens (EOS excluded)."""

    logprobs: np.ndarray  # log p(a_i | q, a_<i), float64
    argmax_match: np.ndarray  # argmax_v p(v | q, a_<i) == a_i

    @property
    def mean_nll(self) -> float:
        return float(-self.logprobs.mean())


@dataclass
class SplitScores:
    """Everything metrics need about one model on one split. ``role`` is forget | retain | utility."""

    split: str
    role: str
    ids: list[str]
    answers: list[str]
    answer: list[TokenScores]
    paraphrase_nll: np.ndarray  # (n,) mean answer-token NLL of the paraphrased answer
    perturbed_nll: np.ndarray  # (n, k) the same for each perturbed answer
    generations: list[str]

    def __len__(self) -> int:
        return len(self.ids)


@torch.inference_mode()
def teacher_forced(model, encoded: Sequence[Encoded], pad_id: int, batch_size: int) -> list[TokenScores]:
    """Per-token answer log-probs and argmax matches for every sequence, in input order.

    Sequences are sorted by length before batching so padding stays small; results are put back in order.
    """
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
    out: list[TokenScores | None] = [None] * len(encoded)
    for start in range(0, len(order), batch_size):
        rows = order[start: start + batch_size]
        batch = collate([encoded[i] for i in rows], pad_id).to(device)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float()
        targets = batch.labels[:, 1:]
        mask = targets != -100
        safe = targets.clamp_min(0)
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        match = logits.argmax(-1) == safe
        for r, i in enumerate(rows):
            m = mask[r]
            out[i] = TokenScores(logprobs[r][m].double().cpu().numpy(), match[r][m].cpu().numpy())
    return out  # type: ignore[return-value]


@torch.inference_mode()
def greedy_generate(model, tokenizer, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                    batch_size: int) -> list[str]:
    """Greedy continuations of left-padded prompts, decoded up to EOS, special tokens removed, stripped."""
    device = next(model.parameters()).device
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start: start + batch_size]
        width = max(len(prompts[i]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            p = torch.tensor(prompts[i], dtype=torch.long)
            ids[r, width - len(p):] = p
            attention[r, width - len(p):] = 1
        gen = model.generate(input_ids=ids.to(device), attention_mask=attention.to(device), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos, num_beams=1)
        for r, i in enumerate(rows):
            new = gen[r, width:].tolist()
            if eos in new:
                new = new[: new.index(eos)]
            out[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
    return out


def score_split(model, tokenizer, template: str, ds: Dataset, split: str, role: str, batch_size: int,
                max_new_tokens: int) -> SplitScores:
    """One teacher-forced pass (answers, paraphrases, perturbations together) and one generation for ``ds``."""
    questions, answers = ds["question"], ds["answer"]
    paraphrases, perturbed = ds["paraphrased_answer"], ds["perturbed_answers"]
    k = len(perturbed[0]) if len(ds) else 0
    encoded: list[Encoded] = []
    for q, a, p, perts in zip(questions, answers, paraphrases, perturbed):
        if len(perts) != k:
            raise ValueError(f"split {split}: every item needs {k} perturbed answers")
        encoded += [encode_qa(tokenizer, template, q, text, add_eos=False) for text in (a, p, *perts)]
    scores = teacher_forced(model, encoded, tokenizer.pad_token_id, batch_size)
    width = 2 + k
    answer = scores[0::width]
    paraphrase_nll = np.array([s.mean_nll for s in scores[1::width]])
    perturbed_nll = np.array([[scores[i * width + 2 + j].mean_nll for j in range(k)] for i in range(len(ds))])
    prompts = [encode_prompt(tokenizer, template, q) for q in questions]
    generations = greedy_generate(model, tokenizer, prompts, max_new_tokens, batch_size)
    return SplitScores(split, role, list(ds["id"]), list(answers), answer, paraphrase_nll,
                       perturbed_nll.reshape(len(ds), k), generations)
