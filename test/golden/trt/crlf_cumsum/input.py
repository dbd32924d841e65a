import torch


def pos(ids, pad):
    mask = ids.ne(pad).int()
    return torch.cumsum(mask, 1) * mask


net = torch.nn.Linear(2, 2)
torch.onnx.export(net, torch.zeros(1, 2), "n.onnx")
