"""Writes a ~2 GiB DeepSpeed ZeRO-3 checkpoint of 2 ranks for the consolidation benchmark, with
the file layout, keys and pickled globals DeepSpeed 0.19.6's save_checkpoint gives (see
../shared/corpus/deepspeed/README.md), without DeepSpeed: its classes are small stand-ins pickled
under the same global names (`LossScaler` by NEWOBJ + BUILD, `ZeroStageEnum` by REDUCE), and the
fp32 flat groups hold cheap values (a ramp). The Adam moments are left out, so the rank files hold
only what consolidation reads and `cat rank files > out` is a fair peer.

  /usr/bin/python3 test/bench/make_zero3.py OUT_DIR
Correctness is proven on the real files (test/interop/deepspeed.test.ts); this is a size test.
"""
import math, os, sys
from collections import OrderedDict
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'deepspeed'))
from ds_stand_ins import LossScaler, ZeroStageEnum  # noqa: E402

out = sys.argv[1]
tag = os.path.join(out, 'global_step1000')
os.makedirs(tag, exist_ok=True)
WS = 2
# 62 params of 4096 x 2048 (32 MiB each) and 2 with odd numels (padding on the last rank), in 2 groups
shapes = [OrderedDict(), OrderedDict()]
for i in range(62):
    shapes[0][f'layers.{i}.weight'] = torch.Size([4096, 2048])
shapes[1]['head.weight'] = torch.Size([4095, 2047])
shapes[1]['head.bias'] = torch.Size([4095])
module = OrderedDict((k, torch.empty(0)) for g in shapes for k in g)
module['norm.running_mean'] = torch.zeros(4096)
for r in range(WS):
    group_numels = [sum(math.ceil(s.numel() / WS) for s in g.values()) for g in shapes]
    flat = [torch.arange(n, dtype=torch.float32).mul_(1e-6).add_(r) for n in group_numels]
    torch.save({'optimizer_state_dict': {
        'zero_stage': ZeroStageEnum.weights, 'loss_scaler': LossScaler(1.0), 'dynamic_loss_scale': False, 'overflow': False,
        'partition_count': WS, 'fp32_flat_groups': flat}, 'ds_config': {'zero_optimization': {'stage': 3}}, 'ds_version': '0.19.6'},
        os.path.join(tag, f'zero_pp_rank_{r}_mp_rank_00_optim_states.pt'))
    del flat
    torch.save({'module': module, 'buffer_names': ['norm.running_mean'], 'optimizer': None, 'param_shapes': shapes,
                'frozen_param_shapes': OrderedDict(), 'shared_params': {}, 'frozen_param_fragments': {}, 'lr_scheduler': None,
                'global_steps': 1000, 'dp_world_size': WS, 'mp_world_size': 1, 'ds_config': {'zero_optimization': {'stage': 3}}, 'ds_version': '0.19.6'},
               os.path.join(tag, f'zero_pp_rank_{r}_mp_rank_00_model_states.pt'))
with open(os.path.join(out, 'latest'), 'w') as f:
    f.write('global_step1000')
print('wrote', out)
