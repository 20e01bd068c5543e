"""Checkpoints for the browser tests, written by real torch (Debian's /usr/bin/python3).

usage: make_checkpoints.py keys10k OUT.pt        10,000 tensors, keys module.layers.N.<part>
       make_checkpoints.py large OUT.pt MIB N    a DataParallel state dict of MIB MiB in N tensors
"""
import sys

import torch

kind, out = sys.argv[1], sys.argv[2]
if kind == 'keys10k':
    parts = ['attn.weight', 'attn.bias', 'mlp.weight', 'mlp.bias', 'norm.weight']
    sd = {}
    for i in range(2000):
        for k, p in enumerate(parts):
            sd[f'module.layers.{i}.{p}'] = torch.full((4,), float(i * 10 + k))
    torch.save(sd, out)
elif kind == 'large':
    mib, n = int(sys.argv[3]), int(sys.argv[4])
    # Many tensors as well as many bytes: converting it takes a while on any disk, as each tensor
    # is written and read back on its own. Distinct values, so every CRC differs.
    numel = mib * (1 << 20) // 4 // n
    sd = {f'module.block{i}.weight': torch.full((numel,), float(i)) for i in range(n)}
    torch.save(sd, out)
else:
    sys.exit(f'unknown kind {kind}')
