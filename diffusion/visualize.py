"""Pictures of the diffusion process: progress grids, the forward process, schedules, strips, curves.

    python visualize.py                      # figures for the run in runs/ (and the schedules)

Every figure is written for the run that made it, under --out-dir.
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def to_image(x):
    """(C, H, W) in [-1, 1] -> (H, W[, C]) in [0, 1] for imshow."""
    x = ((x.float().clamp(-1, 1) + 1) / 2).cpu()
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def image_rows(rows, path, row_labels=None, col_labels=None, scale=0.6):
    """rows: a list of (N, C, H, W) tensors, one figure row each."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(scale * n_cols + 1, scale * n_rows + 0.3), squeeze=False
    )
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if c < len(row):
                ax.imshow(to_image(row[c]), cmap="gray", vmin=0, vmax=1)
            if c == 0 and row_labels:
                ax.set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=7)
            if r == 0 and col_labels:
                ax.set_title(col_labels[c], fontsize=7)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def progress_strip(grids, steps, path):
    """One row per evaluation: the same x_T and labels 0..9 sampled by the EMA model at that step."""
    if grids:
        image_rows(grids, path, [f"step {s}" for s in steps])


def forward_process(x0, schedule, path, ts=(0, 50, 100, 200, 400, 600, 800, 999), seed=0):
    """q(x_t | x_0) on real images: one row per image, one column per t."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x0.shape, generator=g)
    rows = [
        torch.stack(
            [schedule.q_sample(x0[i : i + 1], torch.tensor([t]), noise[i : i + 1])[0] for t in ts]
        )
        for i in range(len(x0))
    ]
    image_rows(rows, path, col_labels=[f"t={t}" for t in ts])


def schedules(path, T=1000):
    """alpha_bar_t (signal kept) for the linear and cosine schedules, and the SNR on a log scale."""
    from schedule import Schedule

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    for kind in ("linear", "cosine"):
        s = Schedule(T, kind)
        a.plot(s.alpha_bar.numpy(), label=kind)
        b.semilogy((s.alpha_bar / (1 - s.alpha_bar)).numpy(), label=kind)
    a.set(xlabel="t", ylabel="alpha_bar_t", title="signal kept")
    b.set(xlabel="t", ylabel="alpha_bar / (1 - alpha_bar)", title="signal-to-noise ratio")
    a.legend()
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def steps_curve(table, path):
    """judge-FID against DDIM steps (no guidance), the DDPM row and the floor as lines."""
    ddim = [r for r in table["rows"] if r["sampler"] == "ddim" and r["guidance"] == 0]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot([r["steps"] for r in ddim], [r["judge_fid"] for r in ddim], "o-", label="DDIM, eta 0")
    for r in table["rows"]:
        if r["sampler"] == "ddpm":
            ax.axhline(
                r["judge_fid"],
                color="C1",
                ls="--",
                label=f"DDPM, {r['steps']} steps, {r.get('samples', '?')} samples",
            )
    ax.axhline(table["floor"], color="gray", ls=":", label="real-vs-real floor")
    ax.set(xscale="log", xlabel="sampling steps", ylabel="judge-FID (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    import json

    import data as datasets
    import harness
    from inference import main as infer
    from schedule import Schedule

    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out-dir", default="runs")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir", default="data")
    args = p.parse_args(argv)

    def run():
        out = harness.prepare_out_dir(args.out_dir)
        try:
            d = datasets.load(args.dataset, args.data_dir)
        except ValueError as e:
            raise harness.UserError(str(e)) from None
        forward_process(d["train_x"][:6], Schedule(1000, "linear"), out / "forward_linear.png")
        forward_process(d["train_x"][:6], Schedule(1000, "cosine"), out / "forward_cosine.png")
        schedules(out / "schedules.png")
        written = ["forward_linear.png", "forward_cosine.png", "schedules.png"]
        if (out / harness.CHECKPOINT).exists():
            infer(["--out-dir", str(out), "--num-samples", "10", "--ddim-steps", "50"])
            written += ["samples.png", "strip.png"]
        tables = [json.loads(f.read_text()) for f in sorted(out.glob("sampler_table*.json"))]
        if tables:  # merged; the floor of the table with the most samples
            table = {
                **max(tables, key=lambda t: t["samples"]),
                "rows": [r for t in tables for r in t["rows"]],
            }
            steps_curve(table, out / "steps_vs_quality.png")
            written.append("steps_vs_quality.png")
        print("wrote " + ", ".join(str(out / w) for w in written))

    return harness.run_main(run, lambda: args.out_dir)


if __name__ == "__main__":
    raise SystemExit(main())
