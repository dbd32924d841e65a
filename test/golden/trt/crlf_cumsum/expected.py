import torch


def pos(ids, pad):
    mask = ids.ne(pad).int()
    return torch.cumsum(mask.float(), 1).long() * mask


net = torch.nn.Linear(2, 2)
net.eval()
torch.onnx.export(net, torch.zeros(1, 2), "n.onnx")
