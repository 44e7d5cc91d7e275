# CIFAR-10 adversarial training schedule (not from the NoFrost paper, whose
# experiments are on ImageNet): the official optimizer (SGD nesterov, cosine)
# with CIFAR's usual lr 0.1 at batch 128 and weight decay 5e-4, 100 epochs.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
)

param_scheduler = dict(type='CosineAnnealingLR', T_max=100, by_epoch=True, begin=0, end=100)

train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()

auto_scale_lr = dict(base_batch_size=128)
