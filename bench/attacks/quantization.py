"""Weight quantization attacks: does rounding the unlearned weights bring the forgotten answers back?

Zhang et al. 2024 ("Catastrophic failure of LLM unlearning via quantization", arXiv 2410.16454) found that gradient-
ascent-style unlearning moves the weights so little that 4-bit quantization rounds many of them back to the
target's grid points, restoring much of the forgotten knowledge; open-unlearning's meta-evaluation (arXiv
2506.12618) uses 4-bit quantization as one of its two robustness attacks.

Every ``nn.Linear`` of the decoder layers is quantized weight-only by torchao (embeddings, norms and the output
head stay in full precision, as in bitsandbytes' and AWQ/GPTQ's defaults), then dequantized back into a plain
fp32 copy of the model, which the scoring engine scores like any model: the dequantized weights give exactly the
logits of torchao's own quantized forward (difference 0.0 measured on the tiny Llama; a weight-only scheme computes
with the dequantized weights by definition).

- ``quant8``: int8, asymmetric (min/max affine) round-to-nearest per group of 32 input channels
  (``IntxWeightOnlyConfig``); asymmetric because torchao's symmetric scale (max|w| / 127.5) clips the largest
  weight of each group, so re-quantizing a quantized model would move it again;
- ``quant4``: int4, asymmetric (min/max affine) round-to-nearest per group of 32: the textbook RTN that HQQ and
  GPTQ's "RTN" baseline also compute (torchao and hqq agree to 1e-6);
- ``nf4``: 4-bit NormalFloat per block of 64 with double-quantized block scales (QLoRA, Dettmers et al. 2023,
  arXiv 2305.14314), torchao's ``to_nf4``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch

from bench.attacks.base import Attack, AttackContext, PerItem, plain_scores
from bench.registry import ATTACKS

GROUP = 32  # input channels per scale (int8 / int4)
NF4_BLOCK, NF4_SCALER_BLOCK = 64, 256


def _decoder_linears(model: torch.nn.Module) -> list[tuple[str, torch.nn.Linear]]:
    """The quantized modules: every nn.Linear except the output head."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m is not head]


def _rtn(bits: int, symmetric: bool) -> Callable[[torch.nn.Linear], torch.Tensor]:
    """torchao's weight-only round-to-nearest of one linear layer, dequantized back to the weight's dtype."""
    from torchao.quantization import IntxWeightOnlyConfig, MappingType, quantize_  # the attack's own library
    from torchao.quantization.granularity import PerGroup  # (the same library, loaded with it)

    config = IntxWeightOnlyConfig(weight_dtype=torch.int8 if bits == 8 else torch.int4, granularity=PerGroup(GROUP),
                                  mapping_type=MappingType.SYMMETRIC if symmetric else MappingType.ASYMMETRIC)

    def quantize(linear: torch.nn.Linear) -> torch.Tensor:
        holder = torch.nn.Sequential(torch.nn.Linear(linear.in_features, linear.out_features, bias=False))
        holder[0].weight = torch.nn.Parameter(linear.weight.detach().float().clone(), requires_grad=False)
        quantize_(holder, config)
        return holder[0].weight.dequantize().to(linear.weight.dtype)

    return quantize


def _nf4(linear: torch.nn.Linear) -> torch.Tensor:
    from torchao.quantization import to_nf4  # the attack's own library

    weight = linear.weight.detach().float()
    # the block scales are themselves quantized in blocks of 256 (QLoRA), or of the largest power of two that
    # divides their count in a layer too small for 256 (the mini task's 64 x 64 layers have 64 scales)
    scaler_block = math.gcd(weight.numel() // NF4_BLOCK, NF4_SCALER_BLOCK)
    return to_nf4(weight, NF4_BLOCK, scaler_block).get_original_weight().to(linear.weight.dtype)


def quantized_copy(model: torch.nn.Module, quantize: Callable[[torch.nn.Linear], torch.Tensor]) -> torch.nn.Module:
    """A deep copy of ``model`` whose decoder linear weights are ``quantize(linear)`` (dequantized values)."""
    attacked = copy.deepcopy(model)
    with torch.no_grad():
        for _, linear in _decoder_linears(attacked):
            linear.weight.copy_(quantize(linear))
    return attacked.eval()


class _Quantization(Attack):
    paper = "Zhang et al. 2024, arXiv 2410.16454; open-unlearning meta-evaluation, arXiv 2506.12618"

    def quantizer(self) -> Callable[[torch.nn.Linear], torch.Tensor]:
        raise NotImplementedError

    def scores(self, model: torch.nn.Module, ctx: AttackContext) -> PerItem:
        return plain_scores(quantized_copy(model, self.quantizer()), ctx)

    def attacked(self, model: torch.nn.Module, ctx: AttackContext) -> tuple[torch.nn.Module, str]:
        return quantized_copy(model, self.quantizer()), ctx.data.config.prompt_template


@ATTACKS.register("quant8")
class Quant8(_Quantization):
    name = "quant8"
    summary = f"int8 weight-only round-to-nearest, asymmetric (min/max), per group of {GROUP} (torchao)"

    def quantizer(self):
        return _rtn(8, symmetric=False)


@ATTACKS.register("quant4")
class Quant4(_Quantization):
    name = "quant4"
    summary = f"int4 weight-only round-to-nearest, asymmetric (min/max), per group of {GROUP} (torchao)"

    def quantizer(self):
        return _rtn(4, symmetric=False)


@ATTACKS.register("nf4")
class NF4(_Quantization):
    name = "nf4"
    summary = f"4-bit NormalFloat per block of {NF4_BLOCK}, double-quantized scales (QLoRA; torchao's to_nf4)"
    paper = "Dettmers et al. 2023 (QLoRA), arXiv 2305.14314; Zhang et al. 2024, arXiv 2410.16454"

    def quantizer(self):
        return _nf4
