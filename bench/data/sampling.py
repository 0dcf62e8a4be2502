"""Seeded batches of encoded items: the sampler the unlearning loop and the relearning attack draw from."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bench.data.tokenize import Encoded, TokenBatch, collate


class EpochSampler:
    """Endless batches of ``batch_size`` items from ``encoded``: a fresh seeded permutation every pass."""

    def __init__(self, encoded: Sequence[Encoded], batch_size: int, pad_id: int, generator: torch.Generator) -> None:
        if not encoded:
            raise ValueError("cannot sample batches from an empty set")
        self.encoded, self.batch_size, self.pad_id, self.generator = encoded, batch_size, pad_id, generator
        self._order: list[int] = []

    def next_rows(self) -> list[int]:
        rows: list[int] = []
        while len(rows) < self.batch_size:
            if not self._order:
                self._order = torch.randperm(len(self.encoded), generator=self.generator).tolist()
            rows.append(self._order.pop())
        return rows

    def next(self) -> TokenBatch:
        return self.collate(self.next_rows())

    def collate(self, rows: list[int], encoded: Sequence[Encoded] | None = None) -> TokenBatch:
        """The batch of ``rows`` of ``encoded`` (default: the sampled list; another list aligned with it, such as
        the forget questions' IDK answers, gives the same rows in that form)."""
        source = self.encoded if encoded is None else encoded
        return collate([source[i] for i in rows], self.pad_id, rows)
