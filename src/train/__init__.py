"""Training: the loop of one rank (train.py runs it), mixed precision with the loss-scale policy,
EMA of the weights, the learning-rate schedules, data-parallel helpers and the training log."""
