"""Real-world utility through EleutherAI's lm-evaluation-harness (lm-eval), offline, on the embedded synthetic task.

The synthetic task ships two lm-eval task *templates* (``tasks/synthetic/lm_eval/*.yaml``) over its world facts:

* ``synthetic_world_mc`` (multiple choice): the prompt ``Question: {question}\\nAnswer:`` and four choices, the true
  answer and three wrong answers *in the answer's own wording* (the target was trained on the ``answer`` wording
  only, so a wrong choice differs from the true one in the value alone; see ``bench.data.lm_eval_files.wrong_answers``),
  in a fixed per-item shuffled order.

  - ``acc``: 1 when argmax_c sum_i log p(c_i | prompt, c_<i) is the gold choice, where c_1.. are the tokens of the
    continuation ``" " + choice`` (lm-eval's ``target_delimiter`` then the choice); ties go to the first choice.
  - ``acc_norm``: the same argmax after dividing each choice's summed log-likelihood by the choice's length. In
    lm-eval 0.4 that length is ``len(choice)`` in *characters* (``acc_bytes`` would use UTF-8 bytes); the world
    facts are ASCII, so characters and bytes coincide here.

* ``synthetic_world_gen`` (generation): greedy decoding after the prompt, stopped at ``"\\n"``, EOS or 24 new tokens.
  ``exact_match`` is 1 when the generation, stripped of surrounding whitespace, equals the answer string exactly
  (case and punctuation included), else 0.

Every metric is a mean over items; ``stderr`` is lm-eval's closed-form standard error of that mean
(sqrt(p (1 - p) / (n - 1)) for a 0/1 metric).

Any task family can ship such templates, with the data files they read (``bench.data.lm_eval_files``:
``render_task_dir`` writes both into a content-addressed folder of the cache); ``lm_eval_utility`` runs
``lm_eval.simple_evaluate`` on an in-memory model through ``HFLM``. Tasks other than the embedded ones (``mmlu``,
``arc_easy``, ``wmdp_bio``, ...) come from lm-eval's own task folder and need their data set on the Hugging Face hub
(or in its local cache).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from tqdm import tqdm

from bench.data.lm_eval_files import embedded_tasks, render_task_dir
from bench.data.tasks import TaskData
from bench.registry import EVALUATIONS
from bench.runtime.keys import EvaluationSpec, MetricKey
from bench.runtime.sections import MetricEntry

# lm-eval's per-simple_evaluate seeds (its own defaults), passed explicitly so a change of default cannot move a number
SEEDS = {"random_seed": 0, "numpy_random_seed": 1234, "torch_random_seed": 1234, "fewshot_random_seed": 1234}
# Mean-aggregated metrics get a closed-form stderr whenever bootstrap_iters > 0 (no resampling); only metrics such as
# bleu / f1 / median are bootstrapped, with this many draws, in-process (DISABLE_MULTIPROC, no process pool).
BOOTSTRAP_ITERS = 100

# HFLM warns about these on every call with an in-memory model; that is exactly how it is used here.
_EXPECTED_WARNINGS = ("`pretrained` model kwarg is not of type `str`",
                      "Passed an already-initialized model through `pretrained`")


class _DropExpected(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_EXPECTED_WARNINGS)


@contextmanager
def _quiet_and_isolated() -> Iterator[None]:
    """For the duration of one evaluation: lm-eval logs at WARNING (minus the expected in-memory-model warnings), no
    progress bars (lm-eval's, datasets'), no bootstrap process pools, no ``git describe`` / ``collect_env``
    subprocesses (lm-eval records them in its result metadata, which is discarded here; ``collect_env`` alone runs
    pip, nvidia-smi and friends), and the global RNG states that lm-eval reseeds are restored afterwards. Everything
    is put back as it was."""
    import datasets  # lm-eval's own dependency, quieted here: loaded with lm-eval, where an evaluation runs
    import lm_eval.api.task  # lm-eval loads only where an evaluation runs: a heavy import (its task registry)
    import lm_eval.evaluator  # lm-eval loads only where an evaluation runs: a heavy import (its task registry)

    with ExitStack() as stack:
        root = logging.getLogger("lm_eval")
        level = root.level
        root.setLevel(logging.WARNING)
        stack.callback(root.setLevel, level)
        hf_logger, drop = logging.getLogger("lm_eval.models.huggingface"), _DropExpected()
        hf_logger.addFilter(drop)
        stack.callback(hf_logger.removeFilter, drop)

        if datasets.is_progress_bar_enabled():
            datasets.disable_progress_bars()
            stack.callback(datasets.enable_progress_bars)
        ds_level = datasets.logging.get_verbosity()
        datasets.logging.set_verbosity_error()
        stack.callback(datasets.logging.set_verbosity, ds_level)

        stack.enter_context(mock.patch.dict(os.environ, {"DISABLE_MULTIPROC": "1"}))
        stack.enter_context(mock.patch.object(lm_eval.evaluator, "get_git_commit_hash", lambda: None))
        stack.enter_context(mock.patch.object(lm_eval.evaluator, "add_env_info", lambda storage: None))
        # the per-task "building requests" bar (no option turns it off)
        stack.enter_context(mock.patch.object(lm_eval.api.task, "tqdm", functools.partial(tqdm, disable=True)))

        py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
        cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

        def restore_rng() -> None:
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.set_rng_state(torch_state)
            if cuda_states is not None:
                torch.cuda.set_rng_state_all(cuda_states)

        stack.callback(restore_rng)
        yield


@functools.lru_cache(maxsize=4)
def _cached_manager(folder: str | None, include_defaults: bool):
    from lm_eval.tasks import TaskManager  # lm-eval loads only where an evaluation runs: a heavy import

    return TaskManager(include_path=folder, include_defaults=include_defaults)


def _task_manager(tasks: Sequence[str], folder: Path | None, embedded: Sequence[str]):
    """Embedded tasks only: a manager over the rendered folder alone (milliseconds, offline). Otherwise lm-eval's
    own task folder is indexed too (~14,000 YAML files, 10+ s; cached per process). Unknown names raise a one-line
    ``ValueError``."""
    embedded_only = folder is not None and all(t in embedded for t in tasks)
    manager = _cached_manager(None if folder is None else str(folder), not embedded_only)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise ValueError(f"unknown lm-eval task(s) {', '.join(map(repr, unknown))} (embedded: "
                         f"{', '.join(embedded) or 'none'}; or any task of lm-eval's own task folder)")
    return manager


def _quiet_hflm_class():
    from lm_eval.models.huggingface import HFLM  # lm-eval loads only where an evaluation runs: a heavy import

    class QuietHFLM(HFLM):
        """HFLM without its per-request-type progress bars."""

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return super().loglikelihood(requests, disable_tqdm=True)

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return super().loglikelihood_rolling(requests, disable_tqdm=True)

        def generate_until(self, requests, disable_tqdm: bool = False):
            return super().generate_until(requests, disable_tqdm=True)

    return QuietHFLM


def _leaf_count(results: dict, name: str) -> int:
    n_samples = results.get("n-samples", {})
    if name in n_samples:
        return int(n_samples[name]["effective"])
    children = results.get("group_subtasks", {}).get(name, [])
    return sum(_leaf_count(results, child) for child in children)


def _flatten(results: dict) -> dict[str, dict]:
    """``{"<task>/<metric>": {"value", "stderr", "n"}}``; a metric reported under several lm-eval filters is keyed
    ``<metric>,<filter>`` (lm-eval's own notation), a metric under one filter by its name alone."""
    out: dict[str, dict] = {}
    for task, metrics in results["results"].items():
        keys = [k for k in metrics if "," in k and "_stderr," not in k]
        filters_of: dict[str, int] = {}
        for key in keys:
            metric = key.split(",", 1)[0]
            filters_of[metric] = filters_of.get(metric, 0) + 1
        n = _leaf_count(results, task)
        for key in keys:
            metric, filt = key.split(",", 1)
            value = metrics[key]
            if not isinstance(value, int | float):
                continue
            stderr = metrics.get(f"{metric}_stderr,{filt}")
            stderr = float(stderr) if isinstance(stderr, int | float) and math.isfinite(stderr) else None
            name = metric if filters_of[metric] == 1 else key
            out[f"{task}/{name}"] = {"value": float(value), "stderr": stderr, "n": n}
    return out


def lm_eval_utility(model, tokenizer, data: TaskData, tasks: Sequence[str] | None = None, batch_size: int = 64,
                    limit: int | None = None) -> dict[str, dict[str, Any]]:
    """Run lm-eval's ``simple_evaluate`` on ``tasks`` (default: the task's ``lm_eval_tasks``, else its family's
    embedded tasks) with the in-memory ``model`` (any device; left in eval mode, weights untouched) and return
    ``{"<task>/<metric>": {"value": float, "stderr": float | None, "n": int}}``, e.g. ``synthetic_world_mc/acc``,
    ``synthetic_world_mc/acc_norm``, ``synthetic_world_gen/exact_match`` (see the module docstring for what each
    computes). ``limit`` caps the items per task (the first ``limit``).

    Zero-shot, no chat template, fixed seeds, no request cache, no per-sample log. Unknown task names raise
    ``ValueError``.
    """
    import lm_eval  # loads only where an evaluation runs: a heavy import (its task registry)

    embedded = embedded_tasks(data.config.family)
    tasks = list((data.config.lm_eval_tasks or embedded) if tasks is None else tasks)
    if not tasks:
        raise ValueError("no lm-eval tasks given")
    # the family's data is rendered only when an embedded task needs it (lm-eval's own tasks bring their data)
    folder = render_task_dir(data) if any(t in embedded for t in tasks) else None
    max_length = getattr(model.config, "max_position_embeddings", None)  # None: HFLM reads n_positions / n_ctx
    with _quiet_and_isolated(), ExitStack() as stack:
        manager = _task_manager(tasks, folder, embedded)
        if hasattr(model, "tie_weights"):
            # HFLM calls model.tie_weights(), which would re-tie an untied head of a model whose config says
            # "tied": the weights evaluated must be exactly the weights given
            stack.enter_context(mock.patch.object(model, "tie_weights", lambda *args, **kwargs: None))
        # every data-parallel process evaluates its own (identical) model in full: lm-eval would otherwise
        # return results on LOCAL_RANK 0 only
        stack.enter_context(mock.patch.dict(os.environ, {"LOCAL_RANK": "0"}))
        lm = _quiet_hflm_class()(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                                 max_length=None if max_length is None else int(max_length))
        results = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit,
                                          bootstrap_iters=BOOTSTRAP_ITERS, log_samples=False, write_out=False,
                                          cache_requests=False, use_cache=None, apply_chat_template=False,
                                          **SEEDS)
    model.eval()
    return _flatten(results)


def _key_problem(key: MetricKey, text: str) -> str | None:
    """A key ``lm_eval/<task>/<metric>``: one task and one metric."""
    return None if key.split and "/" not in key.split else f"unknown column {text!r}; write lm_eval/<task>/<metric>"


def lm_eval_metrics(model, tokenizer, data: TaskData) -> dict[str, MetricEntry]:
    """The task's ``lm_eval_tasks`` through lm-eval (``lm_eval_utility``), as record metrics
    ``lm_eval/<task>/<metric>`` with lm-eval's standard error and a normal 95% interval value +- 1.96 stderr
    (clipped to [0, 1]; lm-eval reports no per-item values to bootstrap without logging every sample)."""
    if not data.config.lm_eval_tasks:
        return {}
    out = {}
    for key, value in lm_eval_utility(model, tokenizer, data, data.config.lm_eval_tasks,
                                      batch_size=data.config.eval.batch_size).items():
        stderr = value["stderr"]
        low, high = ((max(0.0, value["value"] - 1.96 * stderr), min(1.0, value["value"] + 1.96 * stderr))
                     if stderr is not None else (None, None))
        out["lm_eval/" + key] = MetricEntry(value["value"], stderr, value["n"], "lm_eval", low, high)
    return out


EVALUATIONS.add("lm_eval", EvaluationSpec(
    "lm_eval", better="higher", keys="`lm_eval/<task>/<metric>`",
    description="lm-eval (`simple_evaluate` with the model object) on the task's `lm_eval_tasks`. The synthetic task "
                "ships offline YAMLs built from its world facts: `synthetic_world_mc` (`acc`: argmax over 4 answers "
                "of the summed continuation log-likelihood; `acc_norm`: the same per character) and "
                "`synthetic_world_gen` (`exact_match` of the stripped greedy answer). Any lm-eval task name (mmlu, "
                "arc_easy, wmdp_bio) works with hub access. Interval: value +- 1.96 lm-eval stderr.",
    source="Gao et al., lm-evaluation-harness; real-world utility as in arXiv 2406.09179",
    direction=lambda key: "higher",
    describe=lambda key: f"lm-eval task {key.split}: {key.name} of the model (real-world utility)",
    problem=_key_problem, compute=lm_eval_metrics))
