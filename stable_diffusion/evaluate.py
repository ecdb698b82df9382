"""Text faithfulness and sample quality of a trained pipeline, as a function of guidance.

    python evaluate.py                          # guidance 1 2 3 5 7 on runs/, a table + guidance.png
    python evaluate.py --guidance 1 3 --per-class 50

For each guidance scale s: judge accuracy (for the prompt "seven", the share of samples the
judge calls a seven), judge-FID against real test images beside the real-vs-real floor, and
attribute ordering (bold vs thin ink mass, large vs small ink area, slanted vs upright
shear for digits; 0.5 = the word does nothing). judge.py says what each one is.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from data import attributes_of, class_words, load_images
from harness import (
    UserError,
    device_name,
    load_checkpoint,
    run_main,
    save_checkpoint,
    set_threads,
    write_json,
    write_metrics,
)
from judge import (
    Judge,
    JudgeConfig,
    frechet_distance,
    judge_features,
    judge_predict,
    ordering_accuracy,
    train_judge,
)
from pipeline import load_pipeline


def get_judge(out_dir, x, y, steps, train_config):
    """The judge cached as judge.pt (the contract's checkpoint layout), trained if absent."""
    path = Path(out_dir) / "judge.pt"
    if path.exists():
        ckpt = load_checkpoint(path)
        if ckpt["train_config"].get("dataset") == train_config.dataset:
            judge = Judge(JudgeConfig(**ckpt["model_config"]))
            judge.load_state_dict(ckpt["model"])
            return judge.eval()
    judge, opt = train_judge(x, y, steps, generator=torch.Generator().manual_seed(0))
    save_checkpoint(
        path,
        model=judge,
        optimizer=opt,
        model_config=judge.config,
        train_config=train_config,
        step=steps,
        history={},
    )
    return judge


def evaluate(pipe, judge, data, dataset, *, scales, per_class, steps, attr_per_prompt, seed=0):
    """{s: {judge_accuracy, judge_fid}} plus the floor and the attribute orderings at max(scales)."""
    x_train, _, x_test, _ = data
    words = class_words(dataset)
    n_classes = len(words)
    real = judge_features(judge, x_test)
    floor_idx = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))[
        : n_classes * per_class
    ]
    out = {
        "judge_fid_floor": frechet_distance(judge_features(judge, x_train[floor_idx]), real),
        "by_guidance": {},
    }
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    for s in scales:
        g = torch.Generator().manual_seed(seed)
        images = pipe.generate([words[c] for c in labels], steps=steps, guidance=s, generator=g)
        acc = (judge_predict(judge, images) == labels).float().mean().item()
        fid = frechet_distance(judge_features(judge, images), real)
        out["by_guidance"][str(s)] = {"judge_accuracy": acc, "judge_fid": fid}
    # attributes at the strongest guidance asked for: "a bold seven" vs "a thin seven", ...
    g = torch.Generator().manual_seed(seed + 1)
    attributes = attributes_of(dataset)
    orders = {f"{more}_vs_{less}": [] for _, _, more, less in attributes}
    for c in range(n_classes):
        for _, measure, more, less in attributes:
            k = attr_per_prompt
            prompts = [f"a {more} {words[c]}"] * k + [f"a {less} {words[c]}"] * k
            images = pipe.generate(prompts, steps=steps, guidance=max(scales), generator=g)
            m = measure(images).numpy()
            orders[f"{more}_vs_{less}"].append(ordering_accuracy(m[:k], m[k:]))
    out.update({k: float(np.mean(v)) for k, v in orders.items()})
    return out


def report(config, out_dir, device, threads, seconds, steps, ae_ckpt, data, world=1):
    """The judge's figures for the EMA model, metrics.json and a sample grid."""
    from visualize import prompt_grid

    pipe, ckpt = load_pipeline(out_dir, device)
    pipe.autoencoder.cpu(), pipe.diffusion.cpu()
    judge = get_judge(out_dir, data[0], data[1], config.judge_steps, config)
    small = (
        dict(per_class=2, attr_per_prompt=2, steps=5)
        if config.smoke
        else dict(per_class=20, attr_per_prompt=6, steps=50)
    )
    result = evaluate(
        pipe, judge, data, config.dataset, scales=sorted({1.0, config.eval_guidance}), **small
    )
    at = result["by_guidance"][str(float(config.eval_guidance))]
    metrics = dict(
        project="stable_diffusion", dataset=config.dataset, metric="judge_accuracy", value=at["judge_accuracy"],
        unit="fraction", higher_is_better=True, selection="final", guidance=config.eval_guidance,
        n_params=sum(p.numel() for p in pipe.diffusion.parameters()),
        n_params_autoencoder=sum(p.numel() for p in pipe.autoencoder.parameters()),
        steps=steps, ae_steps=ae_ckpt["step"], seconds=seconds, device=device.type, device_name=device_name(device),
        threads=threads, world_size=world, seed=config.seed, judge_accuracy_s1=result["by_guidance"]["1.0"]["judge_accuracy"],
        judge_fid=at["judge_fid"], judge_fid_floor=result["judge_fid_floor"],
        **{k: v for k, v in result.items() if "_vs_" in k}, psnr=ae_ckpt["history"]["val_psnr"][-1],
        scale_factor=ae_ckpt["scale_factor"], val_loss=ckpt["history"]["val_loss"][-1],
    )  # fmt: skip
    write_metrics(out_dir / "metrics.json", **metrics)
    per_prompt = 2 if config.smoke else 8
    prompt_grid(
        pipe,
        out_dir / "samples.png",
        guidance=config.eval_guidance,
        steps=small["steps"],
        per_prompt=per_prompt,
        dataset=config.dataset,
    )
    print(
        f"judge accuracy {metrics['value']:.3f} at s={config.eval_guidance} ({metrics['judge_accuracy_s1']:.3f} at s=1), "
        f"judge-FID {metrics['judge_fid']:.2f} (floor {metrics['judge_fid_floor']:.2f}), PSNR {metrics['psnr']:.2f} dB, "
        f"{seconds:.0f} s; wrote {out_dir}/metrics.json"
    )
    return metrics


def plot_guidance(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = [float(k) for k in result["by_guidance"]]
    acc = [v["judge_accuracy"] for v in result["by_guidance"].values()]
    fid = [v["judge_fid"] for v in result["by_guidance"].values()]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(s, acc, "o-")
    a.set(
        xlabel="guidance scale s",
        ylabel="judge accuracy",
        title="text faithfulness",
        ylim=(0, 1.02),
    )
    b.plot(s, fid, "o-", label="samples vs real test")
    b.axhline(
        result["judge_fid_floor"], color="gray", ls="--", label="real train vs real test (floor)"
    )
    b.set(xlabel="guidance scale s", ylabel="judge-FID", title="sample quality (lower is better)")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out-dir", default="runs", help="where train.py wrote its checkpoints")
    p.add_argument(
        "--guidance", type=float, nargs="+", default=[1, 2, 3, 5, 7], help="guidance scales s"
    )
    p.add_argument("--per-class", type=int, default=20, help="samples per class prompt")
    p.add_argument("--attr-per-prompt", type=int, default=10, help="samples per attribute prompt")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: half the cores)")
    p.add_argument(
        "--smoke", action="store_true", help="two guidance scales, two samples per prompt"
    )
    args = p.parse_args(argv)

    def run():
        set_threads(args.threads)
        if args.smoke:
            args.guidance, args.per_class, args.attr_per_prompt, args.steps = [1, 3], 2, 2, 5
        if (
            min(args.guidance) < 0
            or args.per_class < 2
            or args.attr_per_prompt < 1
            or args.steps < 1
        ):
            raise UserError(
                "need guidance >= 0, --per-class >= 2, --attr-per-prompt >= 1, --steps >= 1"
            )
        pipe, ckpt = load_pipeline(args.out_dir)
        from train import TrainConfig  # the run's own flags, to load the same data

        config = TrainConfig(**ckpt["train_config"])
        data = load_images(config.dataset, config.data_dir)
        judge = get_judge(
            args.out_dir, data[0], data[1], 40 if config.smoke else config.judge_steps, config
        )
        t0 = time.time()
        result = evaluate(pipe, judge, data, config.dataset, scales=args.guidance, per_class=args.per_class,
                          steps=args.steps, attr_per_prompt=args.attr_per_prompt, seed=args.seed)  # fmt: skip
        print(
            f"{'s':>5} {'judge acc':>10} {'judge-FID':>10}   (floor {result['judge_fid_floor']:.2f})"
        )
        for s, v in result["by_guidance"].items():
            print(f"{s:>5} {v['judge_accuracy']:>10.3f} {v['judge_fid']:>10.2f}")
        orders = ", ".join(
            f"{k.replace('_vs_', '>')} {v:.3f}" for k, v in result.items() if "_vs_" in k
        )
        print(f"attribute ordering at s={max(args.guidance)}: {orders}")
        write_json(result, Path(args.out_dir) / "guidance.json")
        plot_guidance(result, Path(args.out_dir) / "guidance.png")
        print(f"{time.time() - t0:.0f} s; wrote {args.out_dir}/guidance.json and guidance.png")

    return run_main(run, lambda: None)


if __name__ == "__main__":
    raise SystemExit(main())
