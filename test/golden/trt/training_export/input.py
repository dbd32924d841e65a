import torch
from torch import nn


def main():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.1), nn.Linear(8, 2))
    x = torch.randn(1, 4)
    torch.onnx.export(model, (x,), "model.onnx", opset_version=17)
    torch.onnx.export(model, (x,), "train.onnx", training=torch.onnx.TrainingMode.TRAINING)


if __name__ == "__main__":
    main()
