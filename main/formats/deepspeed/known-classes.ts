/**
 * DeepSpeed's own classes as its checkpoint pickles name them. They are known: the reader takes
 * their BUILD state or REDUCE argument as data and never imports or runs anything. The security
 * scan still lists them as `unknown-class` (torch.load needs DeepSpeed importable to load the
 * files), with what they are.
 */
export const DEEPSPEED_CLASSES: Readonly<Record<string, string>> = {
  'deepspeed.runtime.fp16.loss_scaler.LossScaler':
    'DeepSpeed static loss-scaler state (cur_scale); loading the file needs DeepSpeed installed, ckpt reads it as data',
  'deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler':
    'DeepSpeed dynamic loss-scaler state (cur_scale, scale_window, …); loading the file needs DeepSpeed installed, ckpt reads it as data',
  'deepspeed.runtime.zero.config.ZeroStageEnum': 'DeepSpeed ZeRO stage, an IntEnum (0-3); loading the file needs DeepSpeed installed, ckpt reads it as data',
  'deepspeed.utils.tensor_fragment.fragment_address':
    'DeepSpeed address of a param slice in a flat partition (numel, start); loading the file needs DeepSpeed installed, ckpt reads it as data',
};
