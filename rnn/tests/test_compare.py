"""compare.py matches hidden sizes by a parameter-count formula: it must equal the model's count."""

from compare import matched_hidden, n_params
from model import CharRNN


def test_parameter_count_formula_used_by_compare():
    for cell in ("rnn", "lstm", "gru"):
        for n_layer in (1, 2):
            model = CharRNN(11, cell, n_embd=5, n_hidden=7, n_layer=n_layer)
            assert n_params(cell, 11, 5, 7, n_layer) == model.n_params()
    assert matched_hidden("lstm", n_params("lstm", 27, 32, 128, 1), 27, 32, 1) == 128
