"""The verify --model-class benchmark's CIFAR-size model (3x32x32 in, 10 classes): two Conv+BatchNorm
blocks, a residual add and a Linear head, the kind of network issue 12 verifies. Its checkpoints and
test set are written by make-files.py into .bench/verify-cifar/."""
import torch.nn as nn


class CifarBenchCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(32)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 8 * 8, 10)

    def forward(self, x):
        x = self.pool(self.bn1(self.conv1(x)).relu())
        x = (x + self.bn2(self.conv2(x))).relu()
        x = self.pool(self.bn3(self.conv3(x)).relu())
        return self.fc(x.flatten(1))
