"""Use a trained Transformer: translate (greedy or beam search), classify, draw attention maps.

The model is rebuilt from the checkpoint alone (config + tokenisers + weights), loaded with
torch.load(weights_only=True). Paper: Vaswani et al. 2017, https://arxiv.org/abs/1706.03762.

    python inference.py                              # 5 random held-out sentences + heat maps
    python inference.py "the red cat sees two dogs"  # translate (or classify) arguments
    echo "my dog likes the apple" | python inference.py -
    python inference.py --beam-size 4 "a happy girl finds the books"
    python inference.py --interactive

Input rules: empty input, a character (or word) outside the training vocabulary, or input
longer than the model's max_len stop with one clear line and exit code 1; nothing is
silently replaced by <unk>.
"""

import argparse
import random
import sys
from pathlib import Path

import data as D
import torch
from decode import beam_search, greedy_decode, output_limit
from model import TransformerConfig
from train import build_model, pick_device


class InputError(ValueError):
    pass


def load(path: Path, device):
    if not path.exists():
        raise InputError(f"no checkpoint at {path}: run `python train.py` first")
    try:
        ck = torch.load(path, weights_only=True, map_location=device)
        model = build_model(ck["task"], TransformerConfig(**ck["config"]))
        model.load_state_dict(ck.get("ema") or ck["model"])  # the averaged weights
    except Exception as e:  # a truncated or foreign file: say so in one line
        raise InputError(
            f"cannot read checkpoint {path} ({type(e).__name__}); retrain with train.py"
        ) from None
    model.to(device).eval()
    tok = {k: D.CharTokenizer.from_dict(v) if v else None for k, v in ck["tokenizers"].items()}
    return model, ck, tok["src"], tok["tgt"]


def encode_input(text, tok, max_len):
    text = text.strip()
    if not text:
        raise InputError("empty input: give a sentence")
    try:
        ids = [D.BOS] + tok.encode(text)
    except ValueError as e:
        raise InputError(f"{e} (the model only knows: {''.join(tok.itos[4:])!r})") from None
    if len(ids) > max_len:
        raise InputError(f"input is {len(ids)} tokens, the model's maximum is {max_len}")
    return ids


@torch.no_grad()
def run_one(text, model, ck, src_tok, tgt_tok, args, device):
    ids = encode_input(text, src_tok, model.config.max_len)
    src = torch.tensor([ids], device=device)  # (1, S)
    if ck["task"] == "classify":
        probs = torch.softmax(model(src)[0].float(), -1)  # (n_classes,)
        top = probs.argsort(descending=True)[:3].tolist()
        return ", ".join(f"{ck['classes'][i]} {probs[i]:.2f}" for i in top)
    n = output_limit(len(ids), model.config.max_len)
    if args.beam_size > 1:
        out = beam_search(model, src, D.BOS, D.EOS, n, args.beam_size, args.alpha)
    else:
        out = greedy_decode(model, src, D.BOS, D.EOS, n)[0]
    return tgt_tok.decode(out)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "text", nargs="*", help="sentences to translate or classify; '-' reads stdin, one per line"
    )
    p.add_argument("--out-dir", default="runs", help="where train.py wrote checkpoint.pt")
    p.add_argument(
        "--checkpoint", default="", help="a checkpoint path (default OUT_DIR/checkpoint.pt)"
    )
    p.add_argument("--beam-size", type=int, default=1, help="1 = greedy decoding")
    p.add_argument(
        "--alpha", type=float, default=0.6, help="beam search length penalty ((5+|Y|)/6)^alpha"
    )
    p.add_argument("--interactive", action="store_true", help="read sentences in a loop")
    p.add_argument(
        "--attention", default="", help="save attention heat maps of this sentence into OUT_DIR"
    )
    p.add_argument("--n", type=int, default=5, help="random held-out examples shown with no text")
    p.add_argument("--seed", type=int, default=None, help="seed for picking the examples")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="cpu")
    args = p.parse_args(argv)
    if args.beam_size < 1:
        p.error("--beam-size must be >= 1")
    if args.alpha < 0:  # beam search's stopping bound assumes lp grows with length
        p.error("--alpha must be >= 0")
    try:
        try:
            device = pick_device(args.device)
        except ValueError as e:  # --device cuda / mps on a machine without one
            raise InputError(str(e)) from None
        model, ck, src_tok, tgt_tok = load(
            Path(args.checkpoint or Path(args.out_dir) / "checkpoint.pt"), device
        )
        texts = args.text
        if texts == ["-"]:
            texts = [line for line in sys.stdin.read().splitlines() if line.strip()]
            if not texts:
                raise InputError("empty input on stdin")
        for t in texts:
            print(f"{t}\n  -> {run_one(t, model, ck, src_tok, tgt_tok, args, device)}")
        if args.attention:
            if ck["task"] != "translate":
                raise InputError(
                    "--attention draws encoder-decoder maps: use a translate checkpoint"
                )
            encode_input(args.attention, src_tok, model.config.max_len)
            from visualize import save_attention_maps

            for path in save_attention_maps(
                model, src_tok, tgt_tok, args.attention, Path(args.out_dir), device
            ):
                print(f"saved {path}")
        if args.interactive:
            print("type a sentence (empty line or Ctrl-D to quit)")
            for line in sys.stdin:
                if not line.strip():
                    break
                try:
                    print(f"  -> {run_one(line, model, ck, src_tok, tgt_tok, args, device)}")
                except InputError as e:
                    print(f"  error: {e}")
        if not texts and not args.attention and not args.interactive:
            show_examples(model, ck, src_tok, tgt_tok, args, device)
    except InputError as e:
        sys.exit(f"error: {e}")


def show_examples(model, ck, src_tok, tgt_tok, args, device):
    """No arguments: translate/classify random held-out examples and draw the attention maps."""
    examples = ck.get("examples") or []
    rng = random.Random(args.seed)
    picked = rng.sample(examples, min(args.n, len(examples)))
    print(f"{len(picked)} random held-out examples (checkpoint step {ck['step']}):")
    right = 0
    for src_text, ref in picked:
        hyp = run_one(src_text, model, ck, src_tok, tgt_tok, args, device)
        ok = hyp == ref or (ck["task"] == "classify" and hyp.split(" ")[0] == ref)
        right += ok
        print(f"{'ok ' if ok else 'BAD'} {src_text}\n    -> {hyp}\n    ref {ref}")
    print(f"{right}/{len(picked)} right")
    if ck["task"] == "translate" and picked:
        from visualize import save_attention_maps

        for path in save_attention_maps(
            model, src_tok, tgt_tok, picked[0][0], Path(args.out_dir), device
        ):
            print(f"saved {path}")


if __name__ == "__main__":
    main()
