"""``ubench build-oracle``, ``ubench checkpoints`` and ``ubench presets``: the models boards run on."""

from __future__ import annotations

import argparse
import json
import time

from bench.data.tasks import load_task
from bench.models.checkpoints import build, ship, verify
from bench.models.presets import apply_to_task, built_path, load_preset, preset_models, preset_names, preset_tokenizer
from bench.run.runspec import runtime_for
from bench.runtime.device import device_name, use_runtime
from bench.runtime.logs import quiet
from bench.runtime.paths import cache_dir


def cmd_build_oracle(args: argparse.Namespace) -> int:
    """Fine-tune a preset's base into the retain oracle of (task, split) (and the target, when the preset has no
    published one) on this machine's device, and cache it where runs look for it."""
    quiet()
    preset = load_preset(args.model)
    data = apply_to_task(preset, load_task(args.task, args.split))
    rt = runtime_for(preset)
    with use_runtime(rt):
        start = time.perf_counter()
        models = preset_models(preset, data, preset_tokenizer(preset))
    for kind, model in models.items():
        built = built_path(preset, data, kind)
        where = f"built at {built}" if str(built) == model.location else f"published: {model.location}"
        print(f"{preset.name} {args.task}/{args.split} {kind}: {where}")
    oracle = models["oracle"].info
    print(json.dumps({"device": device_name(rt.device), "seconds": round(time.perf_counter() - start, 1),
                      "oracle_train_items": oracle.get("train_items"),
                      "oracle_build_seconds": oracle.get("build_seconds")}))
    return 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    """Build (and with --ship, ship) the embedded task's tokenizer, targets and oracles, or verify that a local
    build reproduces the shipped weights (exit 1 where one does not)."""
    quiet()
    if args.action == "verify":
        results = verify(args.task, args.split, args.seeds, args.jobs)
        for r in results:
            state = "identical" if r.equal else f"DIFFERENT (max |diff| {r.max_abs_diff:.3g})"
            print(f"{r.name}: shipped {r.shipped[:16]} local {r.built[:16]}: {state}")
        if not results:
            print("no shipped checkpoints to verify")
        return 0 if results and all(r.equal for r in results) else 1
    if args.ship:
        folders = ship(args.task, args.split, args.seeds, args.jobs)
    else:
        folders = build(args.task, args.split, args.seeds, cache_dir(), args.jobs)
    for folder in folders:
        print(f"wrote {folder}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    for name in preset_names():
        preset = load_preset(name)
        unpinned = preset.unpinned()
        pin = f"  unpinned: {', '.join(unpinned)}" if unpinned else ""
        print(f"{name:22s} {preset.description}{pin}")
    return 0
