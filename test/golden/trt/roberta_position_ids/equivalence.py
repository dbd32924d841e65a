# Compares input.py and expected.py on real tensors (run by test/rules/golden.test.ts with python3 + torch).
import torch


def check(before, after):
    ids = torch.randint(0, 50, (4, 33))
    ids[:, -5:] = 1  # padding
    for past in (0, 3):
        a = before.create_position_ids_from_input_ids(ids, 1, past)
        b = after.create_position_ids_from_input_ids(ids, 1, past)
        assert a.dtype == b.dtype and torch.equal(a, b), (a, b)
