"""The sample workspace's model: a small CNN for scikit-learn's 8x8 digits (Conv, BatchNorm, Linear)."""
import torch.nn as nn


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = self.bn1(self.conv1(x)).relu()
        x = self.pool(self.bn2(self.conv2(x)).relu())
        return self.fc(x.flatten(1))
