"""Generate text from a trained checkpoint (runs/ by default) or from OpenAI's GPT-2 weights.

    python inference.py                                   # runs/checkpoint.pt, prompt "\\n"
    python inference.py --prompt "The for statement" --temperature 0.8 --top-k 40
    python inference.py --init-from gpt2 --prompt "Hello, I'm a language model,"

Tokens are printed as they are drawn. Generation keeps a KV cache (model.KVCache) unless
--no-kv-cache; past the context length the context is cropped to the last block_size tokens, as
GPT-2 does. The model is rebuilt from the checkpoint's config alone; the tokenizer is read from
tokenizer.json beside it. tests/test_inference.py runs it on a checkpoint made by train().
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from model import GPT, GPTConfig
from tokenizer import BPETokenizer, load_tokenizer
from train import load_checkpoint, pick_device


def load_model(out_dir: str, init_from: str | None, device: torch.device):
    """(model, tokenizer) from OUT_DIR/checkpoint.pt + tokenizer.json, or official weights."""
    if init_from:
        from convert import load_pretrained

        model, hf_dir = load_pretrained(init_from)
        tok = BPETokenizer.from_gpt2_files(str(hf_dir / "vocab.json"), str(hf_dir / "merges.txt"))
    else:
        ckpt = load_checkpoint(Path(out_dir) / "checkpoint.pt")
        try:
            model = GPT(GPTConfig(**ckpt["model_config"]))
            model.load_state_dict(ckpt["model"])
        except (KeyError, TypeError, RuntimeError) as e:
            raise RuntimeError(f"{out_dir}/checkpoint.pt is not a GPT checkpoint ({e})") from None
        tok_file = Path(out_dir) / "tokenizer.json"
        if not tok_file.exists():
            raise FileNotFoundError(f"no tokenizer at {tok_file}: run train.py first")
        tok = load_tokenizer(str(tok_file))
    return model.to(device).eval(), tok


def stream_text(model, tok, prompt_ids, args, generator):
    """Yield printable text as tokens arrive. A byte-level BPE token can end inside a UTF-8
    character, so the whole continuation is decoded each time and only the new, complete part
    is yielded (a trailing U+FFFD replacement character waits for the next token)."""
    idx = torch.tensor([prompt_ids], dtype=torch.long, device=next(model.parameters()).device)
    new, shown = [], ""
    for nxt in model.generate_stream(
        idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, use_cache=args.kv_cache, generator=generator,
    ):  # fmt: skip
        new.append(nxt.item())
        text = tok.decode(new)
        if text.endswith("\ufffd"):
            continue
        yield text[len(shown) :]
        shown = text
    text = tok.decode(new)
    if len(text) > len(shown):
        yield text[len(shown) :]


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--out-dir", default="runs", help="directory of checkpoint.pt and tokenizer.json"
    )
    p.add_argument(
        "--init-from",
        default=None,
        help="official weights instead: gpt2 | gpt2-medium | gpt2-large | gpt2-xl | PATH",
    )
    p.add_argument("--prompt", default="\n", help="text to continue")
    p.add_argument("--max-new-tokens", type=int, default=300, help="tokens to generate")
    p.add_argument("--temperature", type=float, default=0.8, help="softmax temperature; 0 = greedy")
    p.add_argument("--top-k", type=int, default=None, help="keep only the k most likely tokens")
    p.add_argument(
        "--top-p",
        type=float,
        default=None,
        help="nucleus: keep the most likely tokens up to this probability",
    )
    p.add_argument("--num-samples", type=int, default=1, help="samples to draw")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument(
        "--kv-cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reuse past keys/values",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda", "mps"),
        help="auto: cuda, then mps, then cpu",
    )
    args = p.parse_args(argv)
    if (
        args.temperature < 0
        or args.max_new_tokens < 0
        or (args.top_k is not None and args.top_k < 1)
    ):
        p.error("--temperature and --max-new-tokens must be >= 0, --top-k >= 1")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        p.error("--top-p must be in (0, 1]")
    device = pick_device(args.device)
    try:
        model, tok = load_model(args.out_dir, args.init_from, device)
        prompt_ids = tok.encode(args.prompt)
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        sys.exit(f"error: {e}")
    if not prompt_ids:
        p.error("the prompt is empty after tokenisation; give at least one character")
    print(
        f"device: {device} | {model.num_params():,} parameters | {type(tok).__name__}",
        file=sys.stderr,
    )
    generator = torch.Generator(device=device).manual_seed(args.seed)
    for i in range(args.num_samples):
        t0, n = time.perf_counter(), args.max_new_tokens
        print(f"--- sample {i + 1} ---\n{args.prompt}", end="", flush=True)
        for piece in stream_text(model, tok, prompt_ids, args, generator):
            print(piece, end="", flush=True)
        dt = time.perf_counter() - t0
        print(
            f"\n--- {n} tokens in {dt:.2f} s ({n / max(dt, 1e-9):.0f} tokens/s) ---",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
