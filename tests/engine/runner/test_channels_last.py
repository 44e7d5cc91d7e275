"""NoFrostRunner's channels_last key: model, attack inputs, checkpoints, resume."""

import copy

import pytest
import torch
from mmengine.config import Config

from nofrost_mm.engine.runner import NoFrostRunner
from tests.attacks.toy import digits_batch
from tests.conftest import REPO_ROOT

CONFIG = REPO_ROOT / 'configs/demo/resnet18-w16_1xb64_digits_nfgsm.py'
TINY = dict(
    train_cfg=dict(max_epochs=1),
    train_dataloader=dict(batch_size=32, dataset=dict(indices=32)),
    val_dataloader=dict(dataset=dict(indices=8)),
    custom_hooks=[dict(type='AdversarialTrainingHook', adv_val_interval=0)],
)


def _runner(work_dir, **options):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(dict(work_dir=str(work_dir), **TINY, **options))
    return NoFrostRunner.from_cfg(cfg)


def _channels_last(model):
    convs = [p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    return all(
        p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs
    )


def test_channels_last_training_checkpoints_and_resume(tmp_path):
    runner = _runner(tmp_path, channels_last=True)
    assert _channels_last(runner.model)
    runner.train()
    model = runner.model
    assert _channels_last(model)  # the optimizer steps keep the layout
    # the attack's images and every pass of the network follow the weights
    seen = []
    probe = copy.deepcopy(model).train()  # its BN statistics move, not the model's
    probe.backbone.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    probe(**probe.data_preprocessor(digits_batch(4), training=True), mode='loss')
    assert len(seen) == 2  # N-FGSM's one step, the adversarial pass
    for x in seen:
        assert x.is_contiguous(memory_format=torch.channels_last)
        assert not x.is_contiguous()

    # the checkpoint loads into a model in the default layout, values equal
    plain = _runner(
        tmp_path / 'plain', channels_last=False, load_from=str(tmp_path / 'epoch_1.pth')
    )
    plain.load_or_resume()
    assert not _channels_last(plain.model)
    for (key, a), b in zip(model.state_dict().items(), plain.model.state_dict().values()):
        assert torch.equal(a, b), key
    # resuming keeps channels-last
    resumed = _runner(
        tmp_path / 'resumed',
        channels_last=True,
        resume=True,
        load_from=str(tmp_path / 'epoch_1.pth'),
    )
    resumed.load_or_resume()
    assert _channels_last(resumed.model) and resumed.epoch == 1


def test_bad_channels_last_names_the_key(tmp_path):
    with pytest.raises(TypeError, match='channels_last must be True or False'):
        _runner(tmp_path, channels_last='yes')
