"""Writes the benchmark inputs with real torch (Debian's 1.13) into .bench/ (not committed).

  dp_2gib.pt       nn.DataParallel-style state dict: 32 x 64 MiB float32 tensors, 'module.' keys
  keys_10k.pt      10,000 small tensors (a state dict with deep dotted keys)
  keys_100k.pt     100,000 small tensors (mixture-of-experts keys)
  batch/NNN.pt     200 small DataParallel checkpoints for the batch benchmark
  keys_500k.safetensors  500,000 one-element float32 tensors (49 MB, nearly all header)
  verify-cifar/    CifarBenchCNN (cifar_bench_model.py) as cpu.pt and DataParallel dp.pt, and
                   test_5000.npz: 5,000 CIFAR-size float32 images (3x32x32) with labels
"""
import os, sys, collections
import torch

out = sys.argv[1] if len(sys.argv) > 1 else '.bench'
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)

p = os.path.join(out, 'dp_2gib.pt')
if not os.path.exists(p):
    sd = collections.OrderedDict()
    for i in range(32):
        sd[f'module.layers.{i}.weight'] = torch.randn(4096, 4096)  # 64 MiB each
    torch.save(sd, p + '.tmp')
    os.replace(p + '.tmp', p)

p = os.path.join(out, 'keys_10k.pt')
if not os.path.exists(p):
    sd = collections.OrderedDict()
    for i in range(10000):
        sd[f'module.encoder.block{i // 100}.layer{i % 100}.weight'] = torch.randn(8)
    torch.save(sd, p + '.tmp')
    os.replace(p + '.tmp', p)

# 100,000 small tensors with mixture-of-experts keys (250 experts x 4 weights in each of 100 layers)
p = os.path.join(out, 'keys_100k.pt')
if not os.path.exists(p):
    sd = collections.OrderedDict()
    for i in range(100000):
        layer, rest = divmod(i, 1000)
        expert, w = divmod(rest, 4)
        sd[f'module.model.layers.{layer}.mlp.experts.{expert}.w{w}.weight'] = torch.randn(16)
    torch.save(sd, p + '.tmp')
    os.replace(p + '.tmp', p)

# 500,000 one-element tensors in safetensors (issue 16): written by hand, as the format is a
# little-endian u64 header length, a JSON header and the data (huggingface/safetensors README)
p = os.path.join(out, 'keys_500k.safetensors')
if not os.path.exists(p):
    import json, struct
    n = 500000
    header = {f'model.layers.{i // 1000}.experts.{i % 1000 // 4}.w{i % 4}': {'dtype': 'F32', 'shape': [1], 'data_offsets': [4 * i, 4 * i + 4]} for i in range(n)}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(p + '.tmp', 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + torch.randn(n).numpy().tobytes())
    os.replace(p + '.tmp', p)

# two batches of 200: 2 MiB DataParallel checkpoints (8 x 256x256), and 130 KB ones (16 x 32x64)
for name, shapes in (('batch-2m', [(256, 256)] * 8), ('batch-small', [(32, 64)] * 16)):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    for i in range(200):
        p = os.path.join(d, f'{i:03d}.pt')
        if not os.path.exists(p):
            sd = collections.OrderedDict((f'module.l{j}.weight', torch.randn(*s)) for j, s in enumerate(shapes))
            torch.save(sd, p)
# verify --model-class at CIFAR size (issue 12): enough samples that the runner's fixed hand-off
# costs are small next to its throughput. Random images and weights with trained-looking BatchNorm
# statistics; both checkpoints hold the same values, as a conversion's source and output do.
d = os.path.join(out, 'verify-cifar')
os.makedirs(d, exist_ok=True)
p = os.path.join(d, 'test_5000.npz')
if not os.path.exists(p):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy as np
    from cifar_bench_model import CifarBenchCNN
    model = CifarBenchCNN()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    sd = model.state_dict()
    torch.save(sd, os.path.join(d, 'cpu.pt'))
    torch.save(collections.OrderedDict(('module.' + k, v) for k, v in sd.items()), os.path.join(d, 'dp.pt'))
    x = torch.randn(5000, 3, 32, 32).numpy()
    y = torch.randint(0, 10, (5000,)).numpy()
    np.savez(p + '.tmp.npz', x=x, y=y)
    os.replace(p + '.tmp.npz', p)
print('bench files ready in', out)
