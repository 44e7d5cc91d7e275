# NoFrost's official schedule: SGD (nesterov, momentum 0.9), lr 0.1 for a
# total batch of 256, weight decay 5e-5, cosine over 90 epochs.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-5)
)

param_scheduler = dict(type='CosineAnnealingLR', T_max=90, by_epoch=True, begin=0, end=90)

train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# lr = 0.1 x (total batch / 256) with --auto-scale-lr
auto_scale_lr = dict(base_batch_size=256)
