#!/usr/bin/python3
"""The SimCLR training step of bench_cpu_simclr_step.cpp, written in PyTorch.

Same model (resnet-small: 3x3 stem of 32 channels, one basic block per stage at 32/64/128
channels with strides 1/2/2, global average pool; projector 128 -> 512 (BN, ReLU) -> 128),
same loss (NT-Xent over 2N views at temperature 0.5, the self-similarity masked out), same
optimiser (SGD, momentum 0.9, weight decay 1e-6), same batch (256 images of 1x28x28, two views).
Prints one line: views/s over the timed steps. Run it with Debian's python3-torch:

    /usr/bin/python3 benchmarks/torch_simclr_step.py --threads 2 --seconds 20
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv3x3(cin, cout, stride):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = conv3x3(cout, cout, 1), nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNetSmall(nn.Module):
    def __init__(self, in_channels=1):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(in_channels, 32, 1), nn.BatchNorm2d(32)
        self.layer1 = BasicBlock(32, 32, 1)
        self.layer2 = BasicBlock(32, 64, 2)
        self.layer3 = BasicBlock(64, 128, 2)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.layer3(self.layer2(self.layer1(h)))
        return torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)


def nt_xent(z1, z2, temperature):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / temperature
    sim = sim - 1e9 * torch.eye(2 * n)
    positives = (torch.arange(2 * n) + n) % (2 * n)
    return F.cross_entropy(sim, positives)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder = ResNetSmall()
    projector = nn.Sequential(nn.Linear(128, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(),
                              nn.Linear(512, 128))
    params = list(encoder.parameters()) + list(projector.parameters())
    sgd = torch.optim.SGD(params, lr=0.3, momentum=0.9, weight_decay=1e-6)
    views = [torch.rand(args.batch, 1, 28, 28), torch.rand(args.batch, 1, 28, 28)]

    def step():
        z = projector(encoder(torch.cat(views)))
        loss = nt_xent(z[: args.batch], z[args.batch:], 0.5)
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        return loss.item()

    step()  # warm-up: first-call allocations and oneDNN primitive creation
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        loss = step()
        steps += 1
    elapsed = time.perf_counter() - start
    print(f"torch {torch.__version__} threads {args.threads}: {steps} steps in {elapsed:.1f} s, "
          f"{2 * args.batch * steps / elapsed:.1f} views/s, loss {loss:.4f}")


if __name__ == "__main__":
    main()
