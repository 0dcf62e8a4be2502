"""White-box probes: is the answer still readable inside the network?

- ``logit_lens`` (nostalgebraist 2020; used on unlearned models by Patil et al. 2023, arXiv 2309.17410, and Lynch
  et al. 2024, arXiv 2402.16835): the output of every decoder layer l is read out through the model's own final
  norm and output head, logits_l = W_head norm(h_l), and scored like the model's answer. The attack picks ONE layer
  per model, the one whose readout gives the forget answers the highest mean Prob, and reports ES and Prob of the
  forget and retain answers there (``forget/layer@logit_lens`` says which, 1-based). At the last layer the readout
  is the model's own output, so the attack never reports less than the plain evaluation's Prob.
- ``patch``: the Unlearning Depth Score (UDS) of Lee et al. 2026 (arXiv 2605.24614), by activation patching. For a
  source model S, patch S's output of decoder layer l into the target ("full") model at the positions that
  predict answer tokens, run the target's remaining layers, and measure the mean answer-token log-probability lost,
  Delta^S_l = (1/T) sum_t [log p_full(a_t) - log p_patched(a_t)]. With S1 = the retain oracle (never learned the
  item) and S2 = the evaluated model, the layers that carry the item's knowledge are FT = {l : Delta^S1_l > tau}
  (tau = 0.05) and, per item,

      UDS = sum_{l in FT} Delta^S1_l * clip(Delta^S2_l / Delta^S1_l, 0, 1) / sum_{l in FT} Delta^S1_l

  1 = the evaluated model lacks the knowledge at every layer where the oracle does (deep erasure), 0 = patching its
  states loses nothing (the knowledge is intact inside). Items with an empty FT (the oracle's states lose nothing)
  have no UDS and are left out of the mean. Higher is better, unlike ES: the key is ``forget/uds@patch``. Departure
  from the reference code: it patches the positions of the whole answer, not an extracted entity span (the
  synthetic answers are the entity).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from bench.attacks.base import ATTACKED_SPLITS, Attack, AttackContext, PerItem
from bench.data.tokenize import Encoded, collate, encode_qa
from bench.metrics.memorization import extraction_strength, probability
from bench.registry import ATTACKS
from bench.runtime.device import adaptive_batches

UDS_TAU = 0.05


def decoder_layers(model: torch.nn.Module) -> Sequence[torch.nn.Module]:
    return model.get_decoder().layers


def _encoded(ctx: AttackContext, split: str) -> list[Encoded]:
    questions, answers = ctx.qa(split)
    template = ctx.data.config.prompt_template
    return [encode_qa(ctx.tokenizer, template, q, a, add_eos=False) for q, a in zip(questions, answers)]


def _positions(encoded: Sequence[Encoded], rows: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(batch row, position, target token) of every answer token of the batch ``rows``: position p predicts the
    token at p + 1."""
    r, p, t = [], [], []
    for b, i in enumerate(rows):
        e = encoded[i]
        for k in range(e.n_prompt, len(e.ids)):
            r.append(b)
            p.append(k - 1)
            t.append(e.ids[k])
    return torch.tensor(r), torch.tensor(p), torch.tensor(t)


class _Capture:
    """Forward hooks that record (or, with ``replace``, overwrite at given positions) decoder-layer outputs."""

    def __init__(self, layers: Sequence[torch.nn.Module]) -> None:
        self.outputs: list[torch.Tensor | None] = [None] * len(layers)
        self.handles = [layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(layers)]
        self.replace: tuple[int, torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def _hook(self, index: int):
        def hook(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            if self.replace is not None and self.replace[0] == index:
                _, rows, positions, values = self.replace
                hidden = hidden.clone()
                hidden[rows, positions] = values
                self.outputs[index] = hidden
                return (hidden, *output[1:]) if isinstance(output, tuple) else hidden
            self.outputs[index] = hidden
            return None
        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def _per_item(values: torch.Tensor, rows: torch.Tensor, n: int) -> list[np.ndarray]:
    values = values.double().cpu().numpy()
    rows = rows.cpu().numpy()
    return [values[rows == b] for b in range(n)]


@torch.inference_mode()
def layer_readouts(model: torch.nn.Module, encoded: Sequence[Encoded], pad_id: int, batch_size: int
                   ) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """For every item and every decoder layer l (0-based): (answer-token log-probs, argmax matches) of the readout
    W_head norm(h_l). One forward per batch; the head runs only at answer-predicting positions."""
    layers = decoder_layers(model)
    norm, head = model.get_decoder().norm, model.get_output_embeddings()
    device = next(model.parameters()).device
    out: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in encoded]
    capture = _Capture(layers)

    def step(rows: list[int]) -> None:
        batch = collate([encoded[i] for i in rows], pad_id)
        model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device))
        r, p, t = _positions(encoded, rows)
        per_layer = []
        for hidden in capture.outputs:
            logits = head(norm(hidden[r.to(device), p.to(device)]))
            per_layer.append((_per_item(_token_logprobs(logits, t.to(device)), r, len(rows)),
                              _per_item((logits.argmax(-1) == t.to(device)).double(), r, len(rows))))
        for b, i in enumerate(rows):  # written only once the whole batch succeeded (a retried batch re-runs)
            out[i] = [(logp[b], match[b].astype(bool)) for logp, match in per_layer]

    try:
        adaptive_batches(list(range(len(encoded))), batch_size, step)
    finally:
        capture.remove()
    return out


@ATTACKS.register("logit_lens")
class LogitLens(Attack):
    name = "logit_lens"
    summary = "answer read out through the final norm and head at every layer; the layer best for forget Prob"
    metrics = ("es", "prob", "layer")
    paper = "nostalgebraist 2020; Patil et al. 2023, arXiv 2309.17410; Lynch et al. 2024, arXiv 2402.16835"

    def scores(self, model: torch.nn.Module, ctx: AttackContext) -> PerItem:
        pad = ctx.tokenizer.pad_token_id
        readouts = {split: layer_readouts(model, _encoded(ctx, split), pad, ctx.batch_size)
                    for split in ATTACKED_SPLITS}
        prob = {split: np.array([[probability(lp) for lp, _ in item] for item in items])  # (items, layers)
                for split, items in readouts.items()}
        best = int(np.argmax(prob["forget"].mean(axis=0)))
        out: PerItem = {}
        for split, items in readouts.items():
            out[split] = {"es": np.array([extraction_strength(item[best][1]) for item in items]),
                          "prob": prob[split][:, best]}
        out["forget"]["layer"] = np.full(len(readouts["forget"]), best + 1.0)
        return out


@torch.inference_mode()
def patching_deltas(target: torch.nn.Module, source: torch.nn.Module, encoded: Sequence[Encoded], pad_id: int,
                    batch_size: int) -> np.ndarray:
    """(items, layers) Delta_l: the mean answer-token log-prob the target loses when the source's output of decoder
    layer l replaces its own at the answer-predicting positions (module docstring)."""
    device = next(target.parameters()).device
    t_layers, s_layers = decoder_layers(target), decoder_layers(source)
    out = np.zeros((len(encoded), len(t_layers)))
    source_capture, target_capture = _Capture(s_layers), _Capture(t_layers)

    def step(rows: list[int]) -> None:
        batch = collate([encoded[i] for i in rows], pad_id)
        kwargs = dict(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device))
        r, p, t = (x.to(device) for x in _positions(encoded, rows))
        source(**kwargs)
        states = [h[r, p].clone() for h in source_capture.outputs]  # before the target's passes (the target
        full = _token_logprobs(target(**kwargs).logits[r, p], t)    # may be the source itself)
        for layer in range(len(t_layers)):
            target_capture.replace = (layer, r, p, states[layer])
            try:
                patched = _token_logprobs(target(**kwargs).logits[r, p], t)
            finally:
                target_capture.replace = None
            for b, delta in enumerate(_per_item(full - patched, r.cpu(), len(rows))):
                out[rows[b], layer] = delta.mean() if len(delta) else 0.0

    try:
        adaptive_batches(list(range(len(encoded))), batch_size, step)
    finally:
        source_capture.remove()
        target_capture.remove()
    return out


def uds(baseline: np.ndarray, test: np.ndarray, tau: float = UDS_TAU) -> np.ndarray:
    """Per-item UDS from (items, layers) deltas of the oracle (``baseline``, S1) and the evaluated model (``test``,
    S2); NaN where no layer's baseline delta exceeds ``tau``."""
    ft = baseline > tau
    ratio = np.clip(np.divide(test, baseline, out=np.zeros_like(test), where=ft), 0.0, 1.0)
    weight = np.where(ft, baseline, 0.0).sum(axis=1)
    score = np.where(ft, baseline * ratio, 0.0).sum(axis=1)
    return np.divide(score, weight, out=np.full(len(weight), np.nan), where=weight > 0)


@ATTACKS.register("patch")
class Patching(Attack):
    name = "patch"
    cost = "expensive"  # 2 + 2 x layers forwards per batch
    metrics = ("uds",)
    directions = {"uds": "higher"}
    summary = "Unlearning Depth Score: the model's layer outputs patched into the target, tau = 0.05"
    paper = "Lee et al. 2026 (UDS), arXiv 2605.24614"

    def scores(self, model: torch.nn.Module, ctx: AttackContext) -> PerItem:
        target, oracle = ctx.reference("target"), ctx.reference("oracle")
        encoded, pad = _encoded(ctx, "forget"), ctx.tokenizer.pad_token_id
        baseline = patching_deltas(target, oracle, encoded, pad, ctx.batch_size)
        test = patching_deltas(target, model, encoded, pad, ctx.batch_size)
        return {"forget": {"uds": uds(baseline, test)}}
