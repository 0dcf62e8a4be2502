"""Tiny models trained from scratch on a task and cached: the tokenizer, the target and the retain oracle.

* tokenizer: byte-level BPE trained with ``tokenizers`` on every text of the task, with a BOS post-processor;
* target: a small Llama trained on every trained person plus the world facts (``TaskData.target_train``);
* retain oracle: the same recipe on the target's data without the forget split (``TaskData.oracle_train``).

Each artefact is named ``<kind>-<key>`` where the key covers (task digest, split, kind, replicate seed); it is
saved with ``save_pretrained`` (any HF tool loads it) next to ``build.json`` with the build time, greedy exact match
and ``weights_sha256`` (``weights_hash``: the tensors' bytes, not the file), written into a temporary folder and
renamed into place, so a crash never leaves a half-written model that later runs would trust.

**Shipped checkpoints.** A model trained from scratch amplifies round-off, so two machines (or thread counts)
building the same recipe get different weights and different boards. The embedded task therefore ships its
tokenizer, targets and retain oracles in the repository (``tasks/<family>/checkpoints/<kind>-<key>/``, built under
the pinned numerics of ``bench.runtime.numerics`` by ``ubench checkpoints build --ship``), and every user unlearns from
the same weights: ``get_model`` loads the shipped folder when there is one (its weight hash checked on first load) and
builds into ``cache_dir()/models`` otherwise, or always with ``UBENCH_BUILD_MODELS=1``.
``ubench checkpoints verify`` rebuilds locally and compares with the shipped weights. ``model_identity`` (the
shipped weight hash, or the recipe key of a local build) enters run and reference ids.

**Replicates.** ``replicate`` r builds the model with seed ``model.seed + r``: a board's seed is a replicate of the
whole experiment (its own target, its own oracle, its own unlearning order), not only of the batch order.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from bench.data.tasks import TaskConfig, TaskData, TinyModelConfig
from bench.data.tokenize import collate, encode_prompt, encode_qa
from bench.metrics.engine import greedy_generate
from bench.runtime.device import runtime
from bench.runtime.numerics import numerics_env, pin_threads
from bench.runtime.paths import cache_dir, tasks_dir
from bench.specs.mapping import content_hash

if TYPE_CHECKING:  # the datasets library loads where a task's data is built
    from datasets import Dataset

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"]
ATTENTION = "sdpa"  # pinned: the attention kernel is part of the numerics (eager is switched on where vmap needs it)
BUILD_ENV = "UBENCH_BUILD_MODELS"  # 1: build the tiny models locally even where shipped checkpoints exist
PAD, BOS, EOS = 0, 1, 2


TEXT_COLUMNS = ("question", "paraphrased_question", "answer", "paraphrased_answer", "idk_answer", "text")


def _task_texts(data: TaskData) -> list[str]:
    """Every string the task can show the model (the tokenizer's training corpus): the template and each split's
    questions, answers, perturbed answers, refusals and texts. With a ``train_corpus`` (which holds every forget
    and retain corpus of the task) the split's own corpora are left out, so the tokenizer, like the target, is the
    same whichever forget split built it."""
    texts: list[str] = [data.config.prompt_template]
    corpora = (data.train_corpus,) if data.train_corpus is not None else (data.retain_corpus, data.forget_corpus)
    for ds in (data.retain, data.forget, data.holdout, data.world_facts, data.retain_eval, data.real_authors,
               data.retain_bio, data.forget_bio, *corpora, data.mia_forget, data.mia_holdout):
        if ds is None:
            continue
        for column in TEXT_COLUMNS:
            if column in ds.column_names:
                texts += [t for t in ds[column] if t]
        if "perturbed_answers" in ds.column_names:
            texts += [t for answers in ds["perturbed_answers"] for t in answers]
    return texts


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE on ``texts``; the post-processor prepends BOS (so ``add_special_tokens`` means BOS)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", BOS)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   padding_side="right", add_bos_token=True)


def llama_config(cfg: TinyModelConfig, vocab_size: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=128, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
        tie_word_embeddings=False, attn_implementation=ATTENTION,
    )


def train_causal_lm(data: Dataset, tokenizer, template: str, cfg: TinyModelConfig,
                    replicate: int = 0) -> LlamaForCausalLM:
    """A freshly initialised Llama (seed ``cfg.seed + replicate``) fine-tuned on QA pairs by ``fit_causal_lm``."""
    seed = cfg.seed + replicate
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(cfg, len(tokenizer)))
    return fit_causal_lm(model, data, tokenizer, template, epochs=cfg.epochs, lr=cfg.lr,
                         batch_size=cfg.batch_size, seed=seed)


def fit_causal_lm(model, data: Dataset, tokenizer, template: str, epochs: int, lr: float, batch_size: int,
                  seed: int, weight_decay: float = 0.0, warmup: float = 0.1):
    """Fine-tune ``model`` on (question, answer) pairs (question None = a raw document): the answer-token NLL
    sum_t -log p(a_t | q, a_<t) averaged over the batch's answer tokens, AdamW, one-cycle LR (warm-up share
    ``warmup``, peak ``lr``), gradient norm clipped at 1, ``epochs`` passes in a seeded order, on the model's device
    and under the current runtime's autocast (``bench.runtime.device``). Returns the model in eval mode.

    Batches are length-bucketed (``bucketed_batches``): a 90-token biography in a batch of 20-token answers would
    pad the whole batch to 90 tokens, tripling the cost of training on the task."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else PAD
    encoded = [encode_qa(tokenizer, template, q, a, add_eos=True) for q, a in zip(data["question"], data["answer"])]
    order = torch.Generator().manual_seed(seed)
    schedule = [bucketed_batches([len(e.ids) for e in encoded], batch_size, order) for _ in range(epochs)]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=sum(len(e) for e in schedule),
                                                pct_start=warmup)
    model.train()
    for batches in schedule:
        for rows in batches:
            batch = collate([encoded[i] for i in rows], pad_id).to(device)
            with runtime().autocast_context():
                loss = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                             labels=batch.labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    model.eval()
    return model


BUCKET_WINDOW = 8  # batches per sorting window


def bucketed_batches(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """One epoch of batches covering every index once: a seeded permutation, cut into windows of
    ``BUCKET_WINDOW * batch_size`` items, each window sorted by length and cut into batches, then the batches
    shuffled. Items of similar length share a batch (little padding) while the epoch stays random."""
    perm = torch.randperm(len(lengths), generator=generator).tolist()
    window = BUCKET_WINDOW * batch_size
    batches = []
    for lo in range(0, len(perm), window):
        chunk = sorted(perm[lo: lo + window], key=lambda i: lengths[i])
        batches += [chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size)]
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffle]


@dataclass(frozen=True)
class BuiltModel:
    path: Path
    info: dict

    def load(self) -> LlamaForCausalLM:
        model = LlamaForCausalLM.from_pretrained(self.path, dtype=torch.float32, attn_implementation=ATTENTION)
        return model.to(runtime().device).eval()


def atomic_build(final: Path, build) -> None:
    """Run ``build(tmpdir)`` and rename the folder into place; a concurrent builder's result wins harmlessly."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "build.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class TaskSplit:
    """A (task config, forget split) pair: all that model names and ids need, without loading the datasets."""

    config: TaskConfig
    split: str


def shipped_dir(data: TaskData | TaskSplit) -> Path:
    """Where the task family's shipped checkpoints live: ``<tasks>/<family>/checkpoints``."""
    return tasks_dir() / data.config.family / "checkpoints"


def build_locally() -> bool:
    return os.environ.get(BUILD_ENV, "").strip() not in ("", "0")


def _artefact(data: TaskData | TaskSplit, name: str) -> Path:
    """The shipped folder ``name`` where it exists (and ``UBENCH_BUILD_MODELS`` is off), else its cache folder."""
    shipped = shipped_dir(data) / name
    if not build_locally() and (shipped / "build.json").exists():
        return shipped
    return cache_dir() / "models" / name


def tokenizer_name(data: TaskData | TaskSplit) -> str:
    cfg = data.config
    split = model_split(cfg, data.split, "target")  # a per-split target has its own tokenizer
    return f"tokenizer-{content_hash([cfg.digest, 'tokenizer', *([split] if split else [])])}"


def get_tokenizer(data: TaskData) -> PreTrainedTokenizerFast:
    cfg = data.config
    final = _artefact(data, tokenizer_name(data))
    if not (final / "build.json").exists():
        def build(tmp: Path) -> None:
            train_tokenizer(_task_texts(data), cfg.model.vocab_size).save_pretrained(tmp)
            (tmp / "build.json").write_text(json.dumps({"task": cfg.ref, "vocab_size": cfg.model.vocab_size}))

        atomic_build(final, build)
    return PreTrainedTokenizerFast.from_pretrained(final)


def model_key(data: TaskData | TaskSplit, kind: str, replicate: int = 0) -> str:
    """Content hash of what determines a built model: task digest, the forget split (oracle only), kind and the
    replicate seed (replicate 0 keeps the key it had before replicates existed)."""
    parts = [data.config.digest, model_split(data.config, data.split, kind), kind]
    return content_hash(parts if replicate == 0 else [*parts, "replicate", replicate])


def weights_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors in name order (name, dtype, shape, raw bytes): the weights themselves, independent
    of the file format that stores them."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def model_identity(data: TaskData | TaskSplit, kind: str, replicate: int = 0) -> str:
    """What a run or reference id says about a tiny model: ``sha256:<weights>`` of the shipped checkpoint (every
    user unlearns from these weights), or ``build:<recipe key>`` for a local build (its weights then depend on the
    machine; the record's ``build.weights_sha256`` says which ones it got)."""
    name = f"{kind}-{model_key(data, kind, replicate)}"
    shipped = shipped_dir(data) / name / "build.json"
    if not build_locally() and shipped.exists():
        return "sha256:" + json.loads(shipped.read_text())["weights_sha256"]
    return f"build:{model_key(data, kind, replicate)}"


def model_split(config, split: str, kind: str) -> str:
    """The forget split a built model depends on: the oracle's always; the target's only where the task trains
    one target per split (``params.target_per_split``: WMDP's bio and cyber targets see different corpora), else
    "" (one target per task, whatever the forget split)."""
    return split if kind == "oracle" or config.params.get("target_per_split") else ""


def greedy_exact_match(model, tokenizer, data: TaskData) -> dict:
    """Share of the evaluated forget and retain items whose greedy answer equals the reference answer exactly."""
    out = {}
    splits = data.eval_splits()
    for name in ("forget", "retain"):
        ds = splits[name]
        prompts = [encode_prompt(tokenizer, data.config.prompt_template, q) for q in ds["question"]]
        answers = greedy_generate(model, tokenizer, prompts, data.config.eval.max_new_tokens,
                                  data.config.eval.batch_size)
        out[name] = sum(g == a.strip() for g, a in zip(answers, ds["answer"])) / max(len(ds), 1)
    return {"exact_answer": out}


def get_model(data: TaskData, kind: str, on_build=None, replicate: int = 0) -> BuiltModel:
    """The ``target`` or ``oracle`` of ``data`` for replicate seed ``replicate``: the shipped checkpoint, or the
    cached build (built on first use, under the pinned thread count). ``build.json`` records the build, its weight
    hash and, for the target, its greedy exact match on forget and retain; ``on_build(model, tokenizer)`` may add
    entries. A shipped checkpoint whose weights do not match its recorded hash is an error."""
    if kind not in ("target", "oracle"):
        raise ValueError(f"kind must be 'target' or 'oracle', got {kind!r}")
    final = _artefact(data, f"{kind}-{model_key(data, kind, replicate)}")
    if not (final / "build.json").exists():
        pin_threads()
        tokenizer = get_tokenizer(data)
        train_set = data.target_train if kind == "target" else data.oracle_train

        def build(tmp: Path) -> None:
            start = time.perf_counter()
            model = train_causal_lm(train_set, tokenizer, data.config.prompt_template, data.config.model, replicate)
            info = {"kind": kind, "task": data.config.ref, "split": data.split, "replicate": replicate,
                    "train_items": len(train_set), "build_seconds": round(time.perf_counter() - start, 2),
                    "params": sum(p.numel() for p in model.parameters()),
                    "weights_sha256": weights_hash(model.state_dict()), "numerics": numerics_env()}
            if kind == "target":
                info.update(greedy_exact_match(model, tokenizer, data))
            if on_build is not None:
                info.update(on_build(model, tokenizer))
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "build.json").write_text(json.dumps(info, indent=2))

        atomic_build(final, build)
    built = BuiltModel(final, json.loads((final / "build.json").read_text()))
    if final.parent == shipped_dir(data):
        _check_shipped(built)
    return built


_CHECKED: set[Path] = set()


def _check_shipped(built: BuiltModel) -> None:
    """Once per process: the shipped weights hash to what their ``build.json`` says (a corrupt or LFS-pointer
    checkpoint is a one-line error, not a silently different board)."""
    if built.path in _CHECKED:
        return
    files = sorted(built.path.glob("*.safetensors"))
    state = {k: v for f in files for k, v in load_file(f).items()}
    found = weights_hash(state) if state else "no weights"
    if found != built.info.get("weights_sha256"):
        recorded = str(built.info.get("weights_sha256"))[:16]
        raise OSError(f"{built.path}: shipped weights hash to {found[:16]}, build.json says {recorded} "
                      f"(corrupt checkout? `git checkout -- {built.path}`)")
    _CHECKED.add(built.path)
