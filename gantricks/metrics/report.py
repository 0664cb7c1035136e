"""An evaluation's result as files and numbers: the flat scalars for logs, the Markdown
summary that states each metric's protocol, and the two files ``eval`` writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gantricks.files import atomic_write_text, make_dirs
from gantricks.metrics import registry


def scalars(result: dict[str, Any]) -> dict[str, float]:
    """The numbers of a result, flat (``eval/is``, ``eval/fid``, ...), for TensorBoard and
    metrics.jsonl."""
    return {f"eval/{k}": v for k, v in registry.numbers(result).items()}


def markdown(result: dict[str, Any], title: str = "Evaluation") -> str:
    """A human-readable summary that states the protocol next to each number."""
    s = result["settings"]
    m = result["metrics"]
    lines = [f"# {title}", ""]
    if result.get("checkpoint"):
        lines.append(f"Checkpoint: `{result['checkpoint']}` (step {result.get('step')})  ")
    lines += [
        f"Dataset: {result['dataset']}, {result['image_size']}px; samples: "
        f"{s['num_samples']} from latent seed {s['seed']}, quantised to uint8 as PNG.",
        "",
        "| metric | value | protocol |",
        "|---|---|---|",
    ]
    nets = result["networks"]
    if "is" in m:
        inc = nets["inception"]
        lines.append(
            f"| Inception Score | {m['is']['mean']:.3f} ± {m['is']['std']:.3f} | "
            f"{inc['network']}, weights sha256 {inc['weights_sha256']}, softmax over 1008 "
            f"unbiased logits, {s['splits']} contiguous splits, mean ± std |"
        )
    ref = result.get("reference") or {}
    if "fid" in m:
        lines.append(
            f"| FID | {m['fid']['value']:.3f} | 2048-d pool features vs "
            f"{ref.get('num_images')} training images ({ref.get('path')}) |"
        )
    if "kid" in m:
        lines.append(
            f"| KID | {m['kid']['mean']:.5f} ± {m['kid']['std']:.5f} | "
            f"{m['kid']['subsets']} subsets of {m['kid']['subset_size']}, cubic kernel |"
        )
    c = m.get("classifier")
    if c is not None:
        info = nets.get("classifier", {})
        net = (
            f"classifier {info.get('name')} ({info.get('source')}), test accuracy "
            f"{100 * float(info.get('test_accuracy', float('nan'))):.2f}%, sha256 "
            f"{info.get('sha256')}"
        )
        if "modes_covered" in c:
            lines.append(f"| modes covered | {c['modes_covered']} / 1000 | {net}, per channel |")
            lines.append(f"| KL(modes ‖ uniform) | {c['kl_to_uniform']:.4f} | over 1000 modes |")
        else:
            lines.append(
                f"| classifier score | {c['classifier_score']:.3f} ± "
                f"{c['classifier_score_std']:.3f} | IS formula with the {net} |"
            )
            lines.append(
                f"| classes covered | {c['classes_covered']} / {len(c['histogram'])} | "
                f"histogram {c['histogram']} |"
            )
            lines.append(f"| KL(classes ‖ uniform) | {c['kl_to_uniform']:.4f} | nats |")
    cf = m.get("classifier_fid")
    if cf is not None:
        lines.append(
            f"| classifier FID (in-domain, not Inception) | {cf['value']:.3f} | Fréchet "
            f"distance of the {cf['feature_dim']}-d penultimate features of classifier "
            f"{cf['classifier']} (sha256 {cf['classifier_sha256']}) vs "
            f"{cf['reference_images']} training images |"
        )
    lines += ["", f"{result['samples_per_s']:.0f} samples/s, {result['seconds']:.1f} s.", ""]
    return "\n".join(lines)


def write_outputs(result: dict[str, Any], out_dir: Path, stem: str = "eval") -> tuple[Path, Path]:
    """``STEM.json`` and ``STEM.md`` in ``out_dir``, each written atomically."""
    make_dirs(out_dir)
    js = atomic_write_text(out_dir / f"{stem}.json", json.dumps(result, indent=2) + "\n")
    md = atomic_write_text(out_dir / f"{stem}.md", markdown(result))
    return js, md
