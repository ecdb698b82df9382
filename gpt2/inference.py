"""Generate text from a trained checkpoint (runs/ by default) or from OpenAI's GPT-2 weights.

    python inference.py                                   # runs/checkpoint.pt, prompt "\\n"
    python inference.py --prompt "The for statement" --temperature 0.8 --top-k 40
    python inference.py --prompt "The for statement" --temperature 0   # greedy: the argmax
    python inference.py --init-from gpt2 --prompt "Hello, I'm a language model,"

Tokens are printed as they are drawn. Generation keeps a KV cache (model.KVCache) unless
--no-kv-cache; past the context length the context is cropped to the last block_size tokens, as
GPT-2 does. The model is rebuilt from the checkpoint alone: its `model_config`, `model` weights
and `tokenizer`. tests/test_inference.py runs it on a checkpoint made by train().
"""

import argparse
import sys
import time
from pathlib import Path

import harness
import torch
from model import GPT, GPTConfig
from tokenizer import tokenizer_from_dict


def load_model(checkpoint: str, init_from: str | None, device: torch.device):
    """(model, tokenizer) from a checkpoint written by train.py, or official weights."""
    if init_from:
        from convert import load_pretrained, pretrained_tokenizer

        model, hf_dir = load_pretrained(init_from)
        tok = pretrained_tokenizer(hf_dir)
    else:
        ckpt = harness.load_checkpoint(checkpoint)
        try:
            model = GPT(GPTConfig(**ckpt["model_config"]))
            model.load_state_dict(ckpt["model"])
            tok = tokenizer_from_dict(ckpt["tokenizer"], checkpoint)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise harness.UserError(
                f"{checkpoint} is not a GPT checkpoint of this folder ({type(e).__name__})"
            ) from None
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--out-dir", default="runs", help="the training run to load")
    p.add_argument("--checkpoint", default=None, help="default: OUT_DIR/checkpoint.pt")
    p.add_argument("--init-from", default=None, help="official weights instead: gpt2 | gpt2-medium | gpt2-large | gpt2-xl | PATH")  # fmt: skip
    p.add_argument("--prompt", default="\n", help="text to continue")
    p.add_argument("--max-new-tokens", type=int, default=300, help="tokens to generate per sample")
    p.add_argument("--num-samples", type=int, default=1, help="samples to draw")
    p.add_argument("--temperature", type=float, default=0.8, help="softmax temperature; 0 = greedy")
    p.add_argument("--top-k", type=int, default=None, help="keep only the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus: the most likely tokens up to this probability")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--kv-cache", action=argparse.BooleanOptionalAction, default=True, help="reuse past keys/values")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto: cuda, then mps, then cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: half the cores)")
    return p


def generate(args):
    check = harness.check
    check(args.num_samples >= 1, f"--num-samples must be at least 1, got {args.num_samples}")
    check(
        args.max_new_tokens >= 1, f"--max-new-tokens must be at least 1, got {args.max_new_tokens}"
    )
    check(args.temperature >= 0, f"--temperature must be >= 0 (0 = greedy), got {args.temperature}")
    check(args.top_k is None or args.top_k >= 1, f"--top-k must be at least 1, got {args.top_k}")
    check(args.top_p is None or 0 < args.top_p <= 1, f"--top-p must be in (0, 1], got {args.top_p}")
    greedy_with_filter = args.temperature == 0 and (args.top_k or args.top_p)
    check(
        not greedy_with_filter, "--top-k/--top-p do not apply to greedy decoding (--temperature 0)"
    )
    check(args.threads >= 0, f"--threads must be >= 0, got {args.threads}")
    harness.set_threads(args.threads)
    device = harness.pick_device(args.device)
    checkpoint = args.checkpoint or str(Path(args.out_dir) / harness.CHECKPOINT)
    model, tok = load_model(checkpoint, args.init_from, device)
    try:
        prompt_ids = tok.encode(args.prompt)
    except ValueError as e:  # a character outside a character-level vocabulary
        raise harness.UserError(f"--prompt: {e}") from None
    check(prompt_ids, "the prompt is empty after tokenisation; give at least one character")
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


def main(argv=None):
    args = build_parser().parse_args(argv)
    return harness.run_main(lambda: generate(args))


if __name__ == "__main__":
    sys.exit(main())
