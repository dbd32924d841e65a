import torch


def check(before, after):
    ids = torch.randint(0, 50, (3, 40))
    ids[0, 10:] = 0
    a = before.create_position_ids_from_input_ids(ids, 0)
    b = after.create_position_ids_from_input_ids(ids, 0)
    assert a.dtype == b.dtype and torch.equal(a, b)
