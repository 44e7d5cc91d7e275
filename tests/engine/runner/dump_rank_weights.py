"""A test-only hook: every rank writes its final weights to the work dir."""

import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DumpRankWeightsHook(Hook):
    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        # parameters only: BN running stats stay rank-local (broadcast_buffers=False)
        torch.save(
            {k: p.detach() for k, p in model.named_parameters()},
            osp.join(runner.work_dir, f'rank{runner.rank}_weights.pth'),
        )
