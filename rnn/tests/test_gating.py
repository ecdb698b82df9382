"""Gating, in seconds: recall of a symbol across lag 40 with random noise tokens in between.

Chance is 1/4. Stated: with the same 300 Adam steps, hidden 16 and seed, the LSTM (forget-gate
bias 5) reaches test accuracy > 0.9 and the vanilla tanh RNN stays below 0.35; and at
initialisation the gradient reaching 40 steps back is over 1,000x larger in the LSTM.
"""

from gating import gradient_reach, train_recall

LAG = 40


def test_lstm_solves_recall_where_rnn_stays_at_chance():
    lstm = train_recall("lstm", LAG, steps=300, n_hidden=16, seed=0)
    rnn = train_recall("rnn", LAG, steps=300, n_hidden=16, seed=0)
    assert lstm > 0.9, lstm
    assert rnn < 0.35, rnn


def test_gradient_vanishes_in_rnn_not_in_lstm():
    rnn = gradient_reach("rnn", T=LAG)
    lstm = gradient_reach("lstm", T=LAG)
    # index 0 is the input LAG steps before the loss; index -1 the input at the loss
    assert rnn[0] / rnn[-1] < 1e-6
    assert lstm[0] / lstm[-1] > 1000 * rnn[0] / rnn[-1]
