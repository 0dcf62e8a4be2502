"""Running the audit and writing it: a versioned record (``audit.json``, content-hashed like a board release), a
markdown table (``audit.md``), a CSV and two plots, in ``leaderboards/audit/<task>/`` by default."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from bench.attacks.base import attack_versions
from bench.audit.measure import RELEARN, audit_attacks, column, measure, table
from bench.audit.pools import FT_STEPS, UNLEARNING_METHODS, VARIANTS, knowledge_pools, unlearned_pool
from bench.audit.stats import DRAWS, metric_stats
from bench.data.tasks import load_task
from bench.metrics.identity import metric_versions
from bench.models.tiny import get_tokenizer
from bench.run.record import env_info
from bench.run.references import EVAL_VERSION
from bench.runtime.numerics import pin_threads
from bench.specs.mapping import content_hash
from bench.specs.tiers import tier

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

AUDIT_VERSION = "1"
# the seed paper's conclusion the audit is read against (Wang et al. 2024, arXiv 2406.09179, sections 4-5)
SEED_PAPER = ("Wang et al. 2024 (arXiv 2406.09179) red-teamed Prob/perplexity, ROUGE, EM, ES and the truth ratio "
              "and recommend extraction strength (ES) as the metric whose values stay most consistent under attack.")


def run_audit(task: str, split: str, seeds: Sequence[int], budget: str, methods: Sequence[str] = UNLEARNING_METHODS,
              variants=VARIANTS, log=print, attacks: Sequence[str] | None = None, draws: int = DRAWS) -> dict:
    """Build the pools, measure them and compute every metric's statistics: the audit record (a dict)."""
    pin_threads()
    start = time.perf_counter()
    data = load_task(task, split)
    tokenizer = get_tokenizer(data)
    models = knowledge_pools(data, tokenizer, seeds, variants)
    models += unlearned_pool(data, tokenizer, seeds, tier(budget), methods)
    attacks = list(audit_attacks() if attacks is None else attacks)
    rows, keys = measure(models, data, tokenizer, attacks, log)
    stats = summarise(rows, keys, attacks, draws)
    record = {"kind": "metric-audit", "audit_version": AUDIT_VERSION, "task": data.config.ref, "split": split,
              "seeds": list(seeds), "budget": budget, "methods": list(methods),
              "variants": [list(v) for v in variants], "finetune_steps": FT_STEPS, "attacks": attacks,
              "attack_versions": attack_versions([a for a in attacks if a != RELEARN]),
              "eval_version": EVAL_VERSION, "metric_versions": metric_versions(data.config), "signs": keys,
              "bootstrap_draws": draws, "rows": rows, "stats": stats}
    record["id"] = f"{AUDIT_VERSION}+{content_hash(record)[:10]}"
    record["env"] = env_info()
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record


def summarise(rows: list[dict], keys: dict[str, int], attacks: Sequence[str], draws: int = DRAWS
              ) -> dict[str, dict]:
    """Every metric's ``metric_stats`` from the measured rows."""
    knows, never = table(rows, "knows"), table(rows, "never")
    unlearned = table(rows, "unlearned")
    out = {}
    for key, sign in keys.items():
        after = {a: column(table(rows, "unlearned", a), key) for a in attacks}
        out[key] = metric_stats(column(knows, key), column(never, key), column(unlearned, key), after, sign, draws)
    return out


def _fmt(value: float, interval: tuple[float, float] | None = None) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    if interval is None or not np.isfinite(interval[0]):
        return f"{value:.3f}"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def frame(record: dict) -> pd.DataFrame:
    """metric x (faithfulness, robustness per attack, overall), ordered by overall (best first)."""
    rows = []
    for key, s in record["stats"].items():
        row = {"metric": key, "faithfulness AUC": _fmt(s["auc"], s["intervals"]["auc"])}
        row.update({f"R {a}": _fmt(s["robustness"][a], s["intervals"][f"R/{a}"]) for a in record["attacks"]})
        row["overall"] = _fmt(s["overall"], s["intervals"]["overall"])
        row["_order"] = -s["overall"] if np.isfinite(s["overall"]) else np.inf
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["_order", "metric"]).drop(columns="_order").reset_index(drop=True)


PAPER_CANDIDATES = ("forget/prob", "forget/rouge_l", "forget/em", "forget/es", "forget/truth_ratio")


def _separation_sentence(record: dict) -> str:
    """Whether faithfulness ranks anything here, and which attack moves the metrics most and least."""
    stats = record["stats"]
    aucs = [s["auc"] for s in stats.values() if np.isfinite(s["auc"])]
    saturated = sum(a >= 0.999 for a in aucs)
    mean_r = {a: float(np.nanmean([s["robustness"][a] for s in stats.values()])) for a in record["attacks"]}
    hardest, softest = min(mean_r, key=mean_r.get), max(mean_r, key=mean_r.get)
    text = (f"{saturated} of {len(aucs)} metrics separate the pools perfectly (AUC 1.000), so faithfulness does not "
            "rank them on this task and robustness decides the order. " if saturated > len(aucs) / 2 else "")
    return text + (f"The attack that moves metrics most is `{hardest}` (mean R {mean_r[hardest]:.2f}); the least, "
                   f"`{softest}` ({mean_r[softest]:.2f}).")


def _candidates_sentence(record: dict) -> str:
    """The seed paper's candidate metrics in the audit's order, with ES's place among them."""
    stats = record["stats"]
    present = [k for k in PAPER_CANDIDATES if k in stats and np.isfinite(stats[k]["overall"])]
    if "forget/es" not in present:
        return ""
    ordered = sorted(present, key=lambda k: -stats[k]["overall"])
    es_low, es_high = stats["forget/es"]["intervals"]["overall"]
    above = [k for k in ordered if stats[k]["intervals"]["overall"][0] > es_high]
    below = [k for k in ordered if stats[k]["intervals"]["overall"][1] < es_low]
    listed = " > ".join(f"`{k.split('/')[-1]}` {stats[k]['overall']:.3f}" for k in ordered)
    return (f" Among the paper's own candidates: {listed}; ES is clearly above "
            f"{', '.join(f'`{k}`' for k in below) or 'none'} and clearly below "
            f"{', '.join(f'`{k}`' for k in above) or 'none'} (non-overlapping 95% intervals).")


def finding(record: dict) -> str:
    """The paragraph read against the seed paper: where ES ranks, and which metrics lead."""
    ranked = [k for k in frame(record)["metric"]]
    stats = record["stats"]
    es = stats.get("forget/es")
    top = ", ".join(f"`{k}` ({stats[k]['overall']:.3f})" for k in ranked[:3])
    if es is None:
        return f"{SEED_PAPER} ES is not among the audited metrics here. Best overall: {top}."
    position = ranked.index("forget/es") + 1
    low, high = es["intervals"]["overall"]
    tied = [k for k in ranked if k != "forget/es" and stats[k]["intervals"]["overall"][0] > high]
    verdict = ("agrees: ES is first" if position == 1 else
               f"partly agrees: ES ranks {position} of {len(ranked)}, and no metric's interval lies above ES's"
               if not tied else f"does not single ES out: over every registered metric ES ranks {position} of "
               f"{len(ranked)}, and {', '.join(f'`{k}`' for k in tied)} score above ES's interval")
    return (f"{SEED_PAPER} On {record['task']} ({len(record['seeds'])} replicate(s)), the audit {verdict} "
            f"(ES: faithfulness AUC {es['auc']:.3f}, overall {es['overall']:.3f} [{low:.3f}, {high:.3f}]). "
            f"Best overall: {top}. {_separation_sentence(record)}{_candidates_sentence(record)}")


def _plots(record: dict, out: Path) -> None:
    stats = record["stats"]
    keys = list(frame(record)["metric"])
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(keys) + 1))
    aucs = [stats[k]["auc"] for k in keys]
    lows = [stats[k]["auc"] - stats[k]["intervals"]["auc"][0] for k in keys]
    highs = [stats[k]["intervals"]["auc"][1] - stats[k]["auc"] for k in keys]
    ax.errorbar(aucs, range(len(keys)), xerr=[np.nan_to_num(lows), np.nan_to_num(highs)], fmt="o")
    ax.axvline(0.5, color="grey", lw=0.8)
    ax.set_yticks(range(len(keys)), keys, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("faithfulness AUC (knows vs never learned)")
    fig.tight_layout()
    fig.savefig(out / "faithfulness.png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    grid = np.array([[stats[k]["robustness"][a] for a in record["attacks"]] for k in keys], dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 * len(record["attacks"]) + 3, 0.28 * len(keys) + 1))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(record["attacks"])), record["attacks"], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(keys)), keys, fontsize=7)
    fig.colorbar(image, ax=ax, label="robustness R (1 = unmoved)")
    fig.tight_layout()
    fig.savefig(out / "robustness.png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def markdown(record: dict) -> str:
    pools = (f"**Pools.** *knows*: each replicate's target and {len(record['variants'])} variants of it "
             f"({', '.join(v[0] for v in record['variants'])}); *never*: each replicate's retain oracle under the "
             f"same variants; *unlearned*: each replicate's target unlearned by {', '.join(record['methods'])} "
             f"(tier `{record['budget']}`). The pools differ only in whether the forget set was ever trained on "
             f"(`bench/audit/pools.py`). Statistics in `bench/audit/stats.py`; intervals: 95% bootstrap over models.")
    cite = (f"@misc{{ubench_audit_{record['task'].split('@')[0].replace('-', '_')}_{record['id'].replace('+', '_')},\n"
            f"  title = {{unlearning-bench metric audit of {record['task']}, {record['id']}}},\n"
            f"  note = {{ubench audit, record {record['id']}}}\n}}")
    return (f"# Metric audit: {record['task']} / {record['split']}\n\nRelease `{record['id']}` (content hash of "
            f"`audit.json` without its environment and timing).\n\n{pools}\n\n"
            f"{frame(record).to_markdown(index=False)}\n\n**Finding.** {finding(record)}\n\n"
            f"![faithfulness](faithfulness.png) ![robustness](robustness.png)\n\nCite:\n\n```bibtex\n{cite}\n```\n")


def write_audit(record: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "audit.json").write_text(json.dumps(record, indent=1, sort_keys=True, default=float) + "\n")
    frame(record).to_csv(out / "audit.csv", index=False)
    (out / "audit.md").write_text(markdown(record))
    _plots(record, out)
    return [out / name for name in ("audit.json", "audit.csv", "audit.md", "faithfulness.png", "robustness.png")]

