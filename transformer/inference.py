"""Use a trained Transformer: translate (greedy, sampling or beam search), classify, draw attention.

The model is rebuilt from the checkpoint alone (model_config + tokenisers + weights), loaded
with torch.load(weights_only=True). Paper: Vaswani et al. 2017, https://arxiv.org/abs/1706.03762.

    python inference.py                              # 5 held-out sentences + heat maps
    python inference.py "the red cat sees two dogs"  # translate (or classify) arguments
    echo "my dog likes the apple" | python inference.py -
    python inference.py --beam-size 4 "a happy girl finds the books"
    python inference.py --temperature 0.8 "the dog eats a green apple"   # sampled
    python inference.py --interactive

Input rules: empty input, a character (or word) outside the training vocabulary, or input
longer than the model's max_len stop with one clear line and exit code 1; nothing is
silently replaced by <unk>. Flags that do not apply (--beam-size for a classifier) are refused.
"""

import argparse
import math
import random
import sys
from pathlib import Path

import data as D
import harness
import torch
from decode import beam_search, output_limit, sample_decode
from harness import UserError
from model import TransformerConfig
from train import build_model


def load(path: Path, device):
    ck = harness.load_checkpoint(path, device)
    try:
        model = build_model(ck["train_config"]["task"], TransformerConfig(**ck["model_config"]))
        model.load_state_dict(ck.get("ema") or ck["model"])  # the averaged weights
        tok = {k: D.CharTokenizer.from_dict(v) if v else None for k, v in ck["tokenizers"].items()}
    except (KeyError, TypeError, RuntimeError) as e:  # a checkpoint of another folder or version
        raise UserError(
            f"{path} is corrupt or not a checkpoint of transformer/ ({type(e).__name__})"
        ) from None
    model.to(device).eval()
    return model, ck, tok["src"], tok["tgt"]


def encode_input(text, tok, max_len):
    text = text.strip()
    if not text:
        raise UserError("empty input: give a sentence")
    try:
        ids = [D.BOS] + tok.encode(text)
    except ValueError as e:
        raise UserError(f"{e} (the model only knows: {''.join(tok.itos[4:])!r})") from None
    if len(ids) > max_len:
        raise UserError(f"input is {len(ids)} tokens, the model's maximum is {max_len}")
    return ids


@torch.no_grad()
def run_one(text, model, ck, src_tok, tgt_tok, args, device, generator=None):
    ids = encode_input(text, src_tok, model.config.max_len)
    src = torch.tensor([ids], device=device)  # (1, S)
    if ck["train_config"]["task"] == "classify":
        probs = torch.softmax(model(src)[0].float(), -1)  # (n_classes,)
        top = probs.argsort(descending=True)[:3].tolist()
        return ", ".join(f"{ck['classes'][i]} {probs[i]:.2f}" for i in top)
    n = output_limit(len(ids), model.config.max_len)
    if args.beam_size > 1:
        out = beam_search(model, src, D.BOS, D.EOS, n, args.beam_size, args.alpha)
    else:
        out = sample_decode(model, src, D.BOS, D.EOS, n, args.temperature, generator)[0]
    return tgt_tok.decode(out)


def build_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("text", nargs="*", help="sentences to translate or classify; '-' reads stdin")
    p.add_argument("--out-dir", default="runs", help="where train.py wrote checkpoint.pt")
    p.add_argument("--checkpoint", default="", help="a checkpoint (default OUT_DIR/checkpoint.pt)")
    p.add_argument("--beam-size", type=int, default=1, help="1 = no beam search (translate)")
    p.add_argument("--alpha", type=float, default=0.6, help="beam length penalty ((5+|Y|)/6)^alpha")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy; > 0 samples")
    p.add_argument("--interactive", action="store_true", help="read sentences in a loop")
    p.add_argument("--attention", default="", help="save attention maps of this sentence")
    p.add_argument("--num-samples", type=int, default=5, help="held-out examples shown (no text)")
    p.add_argument("--seed", type=int, default=0, help="picks the examples; seeds sampling")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda | mps")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads; 0 = half the cores")
    return p


def check_flags(args, task, given):
    """Values that cannot work, and flags that do not apply to this checkpoint, in one line."""
    harness.check(args.beam_size >= 1, f"--beam-size {args.beam_size}: must be at least 1")
    harness.check(args.num_samples >= 1, f"--num-samples {args.num_samples}: must be at least 1")
    harness.check(args.threads >= 0, f"--threads {args.threads}: must be 0 (auto) or more")
    ok = math.isfinite(args.alpha) and args.alpha >= 0  # beam's stopping bound needs lp to grow
    harness.check(ok, f"--alpha {args.alpha}: must be >= 0")
    ok = math.isfinite(args.temperature) and args.temperature >= 0
    harness.check(ok, f"--temperature {args.temperature}: must be >= 0 (0 = greedy)")
    harness.check(args.beam_size == 1 or args.temperature == 0,
                  "--beam-size and --temperature > 0 exclude each other: search or sample")  # fmt: skip
    if task == "classify":
        for flag in ("beam_size", "alpha", "temperature", "attention"):
            harness.check(flag not in given, f"--{flag.replace('_', '-')} does not apply to a "
                          "classifier checkpoint (it translates nothing)")  # fmt: skip


def main(argv=None):
    args = build_parser().parse_args(argv)
    return harness.run_main(lambda: run(args, harness.given_flags(argv)), lambda: None)


def run(args, given):
    harness.check(args.threads >= 0, f"--threads {args.threads}: must be 0 (auto) or more")
    harness.set_threads(args.threads)
    device = harness.pick_device(args.device)
    path = Path(args.checkpoint or Path(args.out_dir) / harness.CHECKPOINT)
    model, ck, src_tok, tgt_tok = load(path, device)
    task = ck["train_config"]["task"]
    check_flags(args, task, given)
    generator = torch.Generator(device).manual_seed(args.seed)
    texts = args.text
    if texts == ["-"]:
        texts = [line for line in sys.stdin.read().splitlines() if line.strip()]
        harness.check(texts, "empty input on stdin")
    for t in texts:
        print(f"{t}\n  -> {run_one(t, model, ck, src_tok, tgt_tok, args, device, generator)}")
    if args.attention:
        encode_input(args.attention, src_tok, model.config.max_len)
        from visualize import save_attention_maps

        for p in save_attention_maps(model, src_tok, tgt_tok, args.attention, path.parent, device):
            print(f"saved {p}")
    if args.interactive:
        print("type a sentence (empty line or Ctrl-D to quit)")
        for line in sys.stdin:
            if not line.strip():
                break
            try:
                print(f"  -> {run_one(line, model, ck, src_tok, tgt_tok, args, device, generator)}")
            except UserError as e:
                print(f"  error: {e}")
    if not texts and not args.attention and not args.interactive:
        show_examples(model, ck, src_tok, tgt_tok, args, device, generator, path.parent)


def show_examples(model, ck, src_tok, tgt_tok, args, device, generator, out_dir):
    """No arguments: translate/classify held-out examples and draw the attention maps."""
    examples = ck.get("examples") or []
    picked = random.Random(args.seed).sample(examples, min(args.num_samples, len(examples)))
    print(f"{len(picked)} random held-out examples (checkpoint step {ck['step']}):")
    right, classify = 0, ck["train_config"]["task"] == "classify"
    for src_text, ref in picked:
        hyp = run_one(src_text, model, ck, src_tok, tgt_tok, args, device, generator)
        ok = hyp.split(" ")[0] == ref if classify else hyp == ref
        right += ok
        print(f"{'ok ' if ok else 'BAD'} {src_text}\n    -> {hyp}\n    ref {ref}")
    print(f"{right}/{len(picked)} right")
    if not classify and picked:
        from visualize import save_attention_maps

        for p in save_attention_maps(model, src_tok, tgt_tok, picked[0][0], out_dir, device):
            print(f"saved {p}")


if __name__ == "__main__":
    sys.exit(main())
