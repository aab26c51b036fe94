#!/usr/bin/python3
"""SimCLR on Fashion-MNIST in PyTorch, the same run as `selfsup train --method simclr`.

A quality cross-check, not a benchmark: the same resnet-small, projector (128 -> 512 BN ReLU ->
128), NT-Xent at temperature 0.5, AdamW with warm-up + cosine, and the same view recipe
(random resized crop 0.2-1, flip, brightness/contrast jitter 0.4 with p = 0.8), written with
affine_grid/grid_sample. Then kNN (k 200, T 0.1) and a linear probe (standardised features,
AdamW, 50 epochs) on the first 10,000 training / 5,000 test images. If selfsup and this script
land at the same accuracy after the same steps, a plateau is the recipe's, not the engine's.

    /usr/bin/python3 benchmarks/torch_simclr_train.py --subset 10000 --epochs 3 --batch 128
"""
import argparse
import gzip
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_simclr_step import ResNetSmall, nt_xent  # noqa: E402

def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    if data[2] == 8 and data[3] == 3:
        n, h, w = np.frombuffer(data[4:16], '>i4')
        return np.frombuffer(data[16:], np.uint8).reshape(n, 1, h, w)
    n = np.frombuffer(data[4:8], '>i4')[0]
    return np.frombuffer(data[8:], np.uint8)

D = os.environ.get('SELFSUP_FASHION_MNIST', '/usr/share/datasets/fashion-mnist') + '/'
def load(split):
    x = torch.tensor(idx(D + f'{split}-images-idx3-ubyte.gz').copy()).float() / 255
    y = torch.tensor(idx(D + f'{split}-labels-idx1-ubyte.gz').astype(np.int64))
    return x, y

def augment(x, min_scale, out):
    n = x.shape[0]
    area = torch.empty(n).uniform_(min_scale, 1.0)
    logr = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3))
    r = torch.exp(logr)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(n) * 2 - 1) * (1 - w)
    cy = (torch.rand(n) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, (n, 1, out, out), align_corners=False)
    v = F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)
    jit = torch.rand(n) < 0.8
    b = torch.where(jit, torch.empty(n).uniform_(0.6, 1.4), torch.ones(n)).view(n, 1, 1, 1)
    c = torch.where(jit, torch.empty(n).uniform_(0.6, 1.4), torch.ones(n)).view(n, 1, 1, 1)
    v = (v * b).clamp(0, 1)
    m = v.mean(dim=(1, 2, 3), keepdim=True)
    v = ((v - m) * c + m).clamp(0, 1)
    return v

@torch.no_grad()
def feats(enc, x, bs=500):
    enc.eval()
    out = torch.cat([enc(x[i:i + bs]) for i in range(0, len(x), bs)])
    enc.train()
    return out

def knn(ftr, ytr, fte, yte, k=200, t=0.1):
    ftr, fte = F.normalize(ftr, dim=1), F.normalize(fte, dim=1)
    s = fte @ ftr.t()
    v, i = s.topk(k, dim=1)
    w = (v / t).exp()
    votes = torch.zeros(len(fte), 10).scatter_add_(1, ytr[i], w)
    return (votes.argmax(1) == yte).float().mean().item()

def probe(ftr, ytr, fte, yte, epochs=50):
    m, s = ftr.mean(0), ftr.std(0) + 1e-6
    ftr, fte = (ftr - m) / s, (fte - m) / s
    lin = nn.Linear(ftr.shape[1], 10)
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-2, weight_decay=1e-3)
    steps = epochs * ((len(ftr) + 255) // 256)
    sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        perm = torch.randperm(len(ftr))
        for j in range(0, len(ftr), 256):
            b = perm[j:j + 256]
            loss = F.cross_entropy(lin(ftr[b]), ytr[b])
            opt.zero_grad(); loss.backward(); opt.step(); sch.step()
    with torch.no_grad():
        return (lin(fte).argmax(1) == yte).float().mean().item()

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--subset', type=int, default=10000)
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--lr', type=float, default=1e-3, help='AdamW lr (selfsup --lr 2e-3 at batch 128)')
    p.add_argument('--temp', type=float, default=0.5)
    p.add_argument('--min-scale', type=float, default=0.2)
    p.add_argument('--view', type=int, default=28)
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    xtr, ytr = load('train'); xte, yte = load('t10k')
    x = xtr[:a.subset]
    enc = ResNetSmall()
    proj = nn.Sequential(nn.Linear(128, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 128))
    params = list(enc.parameters()) + list(proj.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=1e-6)
    per = len(x) // a.batch
    total = per * a.epochs
    warm = int(0.2 * per)
    step = 0
    t0 = time.time()
    for ep in range(a.epochs):
        perm = torch.randperm(len(x))
        tot = 0
        for j in range(per):
            b = x[perm[j * a.batch:(j + 1) * a.batch]]
            lr = a.lr * (step + 1) / warm if step < warm else 0.5 * a.lr * (1 + math.cos(math.pi * (step - warm) / (total - warm)))
            for g in opt.param_groups: g['lr'] = lr
            v1, v2 = augment(b, a.min_scale, a.view), augment(b, a.min_scale, a.view)
            z = proj(enc(torch.cat([v1, v2])))
            loss = nt_xent(z[:a.batch], z[a.batch:], a.temp)
            opt.zero_grad(); loss.backward(); opt.step()
            tot += loss.item(); step += 1
        print(f'epoch {ep + 1} loss {tot / per:.4f} {time.time() - t0:.0f}s', flush=True)
    ftr, fte = feats(enc, xtr[:10000]), feats(enc, xte[:5000])
    print(f'kNN {100 * knn(ftr, ytr[:10000], fte, yte[:5000]):.2f}% probe {100 * probe(ftr, ytr[:10000], fte, yte[:5000]):.2f}% total {time.time() - t0:.0f}s')

if __name__ == '__main__':
    main()
