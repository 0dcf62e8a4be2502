"""Shared-prompt packing for the engine's teacher-forced pass.

An item's answer, paraphrased answer and perturbed answers all follow the same prompt. Scored as separate
sequences, the prompt (about 70% of the tokens of a synthetic item) runs once per answer; packed, it runs once:
one row holds the prompt and then each answer, a 4D mask lets each answer attend to the prompt and its own earlier
tokens only, and each answer's position ids restart where the prompt ends, so every answer token sees exactly the
context (and rotary positions) of its own sequence and gets its logits to float round-off
(``tests/test_engine_packing.py`` checks this against each sequence run alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bench.data.tokenize import Encoded


def _logits_are_head_of_hidden(model) -> bool:
    """Whether the model's logits are its output embedding applied to the decoder's last hidden state, with no
    scaling or soft-capping after it (Llama, Qwen, Mistral, SmolLM...; not Gemma 2's soft-capping, Cohere's scale)."""
    config = getattr(model, "config", None)
    return (config is not None and hasattr(model, "get_decoder") and model.get_output_embeddings() is not None
            and all(getattr(config, name, None) is None
                    for name in ("final_logit_softcapping", "logit_scale", "logits_scaling")))


PACKABLE_ATTENTION = ("sdpa", "eager")  # kernels that take an arbitrary 4D mask (flash attention does not)


@dataclass(frozen=True)
class Pack:
    """One row of a teacher-forced batch: a prompt shared by the sequences ``members`` (indices into the input),
    followed by each member's answer tokens in turn. Each answer attends to the prompt and to its own earlier
    tokens only, at the positions it has alone (prompt length + j), so its logits are those of its own sequence;
    the prompt is computed once instead of once per member."""

    prompt: tuple[int, ...]
    members: tuple[int, ...]
    answers: tuple[tuple[int, ...], ...]

    @property
    def length(self) -> int:
        return len(self.prompt) + sum(len(a) for a in self.answers)


def packs_of(encoded: Sequence[Encoded], share: bool) -> list[Pack]:
    """Group sequences with the same prompt into rows of at most twice the longest input sequence (a row never
    costs more attention per token than a padded batch of the originals would). A prompt of one token (a bare BOS:
    raw documents) is not worth a longer row, and ``share=False`` keeps one sequence per row."""
    longest = max((len(e.ids) for e in encoded), default=0)
    groups: dict[tuple[int, ...], list[int]] = {}
    rows: list[Pack] = []
    for i, e in enumerate(encoded):
        if share and e.n_prompt >= 2:
            groups.setdefault(e.ids[: e.n_prompt], []).append(i)
        else:
            rows.append(Pack(e.ids[: e.n_prompt], (i,), (e.answer_ids,)))
    for prompt, members in groups.items():
        current: list[int] = []
        for i in members:
            if current and len(prompt) + sum(len(encoded[j].answer_ids) for j in (*current, i)) > 2 * longest:
                rows.append(Pack(prompt, tuple(current), tuple(encoded[j].answer_ids for j in current)))
                current = []
            current.append(i)
        rows.append(Pack(prompt, tuple(current), tuple(encoded[j].answer_ids for j in current)))
    return rows


@dataclass
class PackedBatch:
    """Right-padded packed rows: ids, position ids, the 4D mask (True = may attend) and, for every member answer
    token in input order, the (row, position) whose logits predict it and the token itself."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    allowed: torch.Tensor  # (rows, 1, length, length) bool
    attention: torch.Tensor  # (rows, length) 1 = a token, 0 = padding (the 2D mask of a row with one sequence)
    source_row: torch.Tensor
    source_position: torch.Tensor
    targets: torch.Tensor
    bounds: list[tuple[int, int, int]]  # (input index, first, last) slices of the flat answer tokens


def collate_packs(packs: Sequence[Pack], pad_id: int, device: torch.device | str = "cpu") -> PackedBatch:
    """Segment ids (0 prompt, k + 1 the k-th answer, -1 padding) give the mask: causal, and a key is visible to a
    query when it is in the prompt or in the query's own segment; a padding position sees only itself. Answer
    token j of member k is predicted by its segment's token j - 1, or by the last prompt token for j = 0."""
    width = max(p.length for p in packs)
    ids = torch.full((len(packs), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(packs), width), dtype=torch.long)
    segments = torch.full((len(packs), width), -1, dtype=torch.long)
    rows, sources, targets, bounds = [], [], [], []
    for r, pack in enumerate(packs):
        n_prompt = len(pack.prompt)
        ids[r, :n_prompt] = torch.tensor(pack.prompt, dtype=torch.long)
        positions[r, :n_prompt] = torch.arange(n_prompt)
        segments[r, :n_prompt] = 0
        start = n_prompt
        for k, (member, answer) in enumerate(zip(pack.members, pack.answers)):
            end = start + len(answer)
            ids[r, start:end] = torch.tensor(answer, dtype=torch.long)
            positions[r, start:end] = torch.arange(n_prompt, n_prompt + len(answer))
            segments[r, start:end] = k + 1
            first = len(targets)
            sources += [n_prompt - 1, *range(start, end - 1)][: len(answer)]
            rows += [r] * len(answer)
            targets += answer
            bounds.append((member, first, len(targets)))
            start = end
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    query, key = segments.unsqueeze(2), segments.unsqueeze(1)
    allowed = causal & (query >= 0) & ((key == 0) | (key == query))
    allowed |= torch.eye(width, dtype=torch.bool)  # padding rows attend to themselves (never an empty softmax)
    return PackedBatch(*(t.to(device) for t in (
        ids, positions, allowed.unsqueeze(1), (segments >= 0).long(), torch.tensor(rows, dtype=torch.long),
        torch.tensor(sources, dtype=torch.long), torch.tensor(targets, dtype=torch.long))), bounds)


def _attention_mask(model, allowed: torch.Tensor) -> torch.Tensor:
    """The 4D mask in the form the model's attention kernel reads: boolean for SDPA, additive (0 / dtype min) for
    the eager kernel."""
    if model.config._attn_implementation == "eager":
        dtype = next(model.parameters()).dtype
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
            ~allowed, torch.finfo(dtype).min)
    return allowed


def answer_logits(model, batch: PackedBatch, packed: bool) -> torch.Tensor:
    """Next-token logits of every answer token of the batch (flat, input order): (tokens, vocab). The output
    projection is applied only at the predicting positions, logits = W h_t (the prompt's own predictions are never
    read, and the projection is a large share of a small model's forward). Unpacked rows (one sequence each) take
    the plain 2D padding mask."""
    kwargs = (dict(input_ids=batch.input_ids, attention_mask=_attention_mask(model, batch.allowed),
                   position_ids=batch.position_ids) if packed
              else dict(input_ids=batch.input_ids, attention_mask=batch.attention))
    if not _logits_are_head_of_hidden(model):
        return model(**kwargs).logits[batch.source_row, batch.source_position]
    hidden = model.get_decoder()(**kwargs).last_hidden_state
    return model.get_output_embeddings()(hidden[batch.source_row, batch.source_position])
