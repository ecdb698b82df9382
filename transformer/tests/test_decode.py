"""Masks keep information where it belongs; cached decoding equals uncached, token for token;
sampling with a temperature draws from softmax(logits / temperature)."""

import pytest
import torch
from decode import beam_search, greedy_decode, sample_decode
from model import Transformer, TransformerConfig, padding_mask

BOS, EOS, PAD = 1, 2, 0


def tiny_model(**kw):
    torch.manual_seed(0)
    cfg = TransformerConfig(
        src_vocab=11, tgt_vocab=13, d_model=16, n_head=2, d_ff=32, dropout=0.0, max_len=40, **kw
    )
    return Transformer(cfg).double().eval()


def test_padded_source_positions_do_not_reach_outputs():
    model = tiny_model()
    src = torch.tensor([[1, 5, 6, 7, 0, 0], [1, 8, 9, 0, 0, 0]])  # (B, S) with padding
    tgt = torch.tensor([[1, 4, 5, 6], [1, 7, 8, 9]])
    mask = padding_mask(src, PAD)
    x = model.encoder.embed(src)
    x2 = x.clone()
    x2[0, 4:] = torch.randn(2, 16, dtype=torch.float64) * 5  # change what sits at padded positions
    x2[1, 3:] = torch.randn(3, 16, dtype=torch.float64) * 5
    enc = model.encoder
    run = lambda e: [layer for layer in enc.layers]  # noqa: E731

    def encode(emb):
        h = enc.pos(emb * enc.scale)
        for layer in run(emb):
            h = layer(h, mask)
        return h

    m1, m2 = encode(x), encode(x2)
    real = mask[:, 0, 0]  # (B, S)
    torch.testing.assert_close(m1[real], m2[real], rtol=0, atol=1e-12)
    assert not torch.allclose(m1[~real], m2[~real])  # the padded rows themselves did change
    # the decoder reads memory only through the mask: garbage at padded memory rows changes nothing
    m3 = m1.clone()
    m3[~real] = 100.0
    torch.testing.assert_close(
        model.decode(tgt, m1, mask), model.decode(tgt, m3, mask), rtol=0, atol=1e-12
    )
    # while a change at a real source position does reach the output
    m4 = m1.clone()
    m4[0, 1] += 1.0
    assert not torch.allclose(model.decode(tgt, m1, mask)[0], model.decode(tgt, m4, mask)[0])


def test_future_target_tokens_do_not_reach_past_outputs():
    model = tiny_model()
    src = torch.tensor([[1, 5, 6, 7, 8]])
    tgt = torch.tensor([[1, 4, 5, 6, 7, 8]])
    j = 3
    tgt2 = tgt.clone()
    tgt2[0, j] = 11
    a, b = model(src, tgt), model(src, tgt2)
    torch.testing.assert_close(a[:, :j], b[:, :j], rtol=0, atol=1e-12)  # positions < j cannot see j
    assert not torch.allclose(a[:, j:], b[:, j:])  # positions >= j do


@pytest.mark.parametrize("pre_norm", [False, True])
def test_decode_step_logits_equal_full_decoder(pre_norm):
    model = tiny_model(pre_norm=pre_norm)
    src = torch.tensor([[1, 5, 6, 7, 8, 0]])
    ys = torch.tensor([[1, 4, 5, 6, 7, 8, 9]])
    memory, src_mask = model.encode(src)
    full = model.decode(ys, memory, src_mask)  # (1, T, V)
    caches = model.init_caches(memory)
    first = model.decode_step(
        ys[:, :3], memory, src_mask, caches, 0
    )  # a prefix at once, then 1 by 1
    steps = [first] + [
        model.decode_step(ys[:, t : t + 1], memory, src_mask, caches, t) for t in range(3, 7)
    ]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-10, atol=1e-10)
    assert caches[0]["k"].shape == (1, 2, 7, 8)  # (B, h, T, d_k): every position cached once


def test_cached_greedy_equals_uncached():
    model = tiny_model()
    src = torch.tensor([[1, 5, 6, 7, 8, 0], [1, 9, 10, 4, 0, 0], [1, 3, 7, 7, 7, 7]])
    a = greedy_decode(model, src, BOS, EOS, max_len=25, use_cache=True)
    b = greedy_decode(model, src, BOS, EOS, max_len=25, use_cache=False)
    assert a == b
    assert max(len(x) for x in a) > 5  # a random model writes long outputs: a real comparison


@pytest.mark.parametrize("beam", [1, 3, 5])
def test_cached_beam_equals_uncached(beam):
    model = tiny_model()
    for src in ([[1, 5, 6, 7, 8]], [[1, 9, 10, 4, 4, 5, 6]]):
        src = torch.tensor(src)
        a = beam_search(model, src, BOS, EOS, max_len=20, beam_size=beam, use_cache=True)
        b = beam_search(model, src, BOS, EOS, max_len=20, beam_size=beam, use_cache=False)
        assert a == b


def test_beam_of_one_equals_greedy():
    model = tiny_model()
    src = torch.tensor([[1, 5, 6, 7, 8]])
    assert (
        beam_search(model, src, BOS, EOS, 20, beam_size=1, alpha=0.0)
        == greedy_decode(model, src, BOS, EOS, 20)[0]
    )


def test_options_tied_embeddings_learned_positions_and_cls_pooling():
    from model import ClassifierEncoder

    model = tiny_model(tie_embeddings=True, learned_pos=True)
    assert model.out_proj.weight is model.decoder.embed.weight
    assert isinstance(model.encoder.pos.table, torch.nn.Parameter)
    src, tgt = torch.tensor([[1, 5, 6, 0]]), torch.tensor([[1, 4, 5]])
    model(src, tgt).sum().backward()
    assert model.decoder.embed.weight.grad is not None and model.encoder.pos.table.grad is not None
    cfg = TransformerConfig(src_vocab=11, d_model=16, n_head=2, d_ff=32, n_classes=3, pooling="cls")
    clf = ClassifierEncoder(cfg).double().eval()
    x = torch.tensor([[1, 5, 6, 0, 0], [1, 7, 8, 9, 4]])
    assert clf(x).shape == (2, 3)
    # CLS pooling reads position 0 only, yet position 0 has attended to every real token
    y = x.clone()
    y[0, 2] = 9
    assert not torch.allclose(clf(x)[0], clf(y)[0])


def test_sampling_cached_equals_uncached_and_zero_temperature_is_greedy():
    model = tiny_model()
    src = torch.tensor([[1, 5, 6, 7, 8, 0], [1, 9, 10, 4, 0, 0]])
    draw = lambda cache: sample_decode(
        model, src, BOS, EOS, 20, 1.3, torch.Generator().manual_seed(7), cache
    )
    assert draw(True) == draw(False)
    assert sample_decode(model, src, BOS, EOS, 20, 0.0) == greedy_decode(model, src, BOS, EOS, 20)
    assert sample_decode(model, src, BOS, EOS, 20, 1e-4) == greedy_decode(model, src, BOS, EOS, 20)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_sampling_follows_the_tempered_distribution(temperature):
    """First tokens of 4000 draws from a table: frequencies ~ p^(1/T) / Z, within 4 sigma."""
    from test_beam import A, B, C, TableModel

    p = {EOS: 0.1, A: 0.6, B: 0.25, C: 0.05}
    model = TableModel({(): p}, default=lambda prefix: {EOS: 1.0})
    n = 4000
    out = sample_decode(model, torch.zeros(n, 3, dtype=torch.long), BOS, EOS, 3, temperature,
                        torch.Generator().manual_seed(0), use_cache=False)  # fmt: skip
    z = sum(q ** (1 / temperature) for q in p.values())
    for tok, q in p.items():
        want = q ** (1 / temperature) / z
        got = sum((o[:1] or [EOS]) == [tok] for o in out) / n
        assert abs(got - want) < 4 * (want * (1 - want) / n) ** 0.5, (tok, got, want)
