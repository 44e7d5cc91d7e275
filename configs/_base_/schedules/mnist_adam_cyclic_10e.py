# fast_adversarial's MNIST schedule: Adam, 10 epochs, lr linear 0 -> 5e-3
# (at 2/5 of training) -> 0, updated every iteration (its lr starts at 1e-4
# of the peak here: mmengine's LinearLR is multiplicative and stays at 0).
optim_wrapper = dict(optimizer=dict(type='Adam', lr=5e-3))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        end_factor=1.0,
        by_epoch=True,
        begin=0,
        end=4,
        convert_to_iter_based=True,
    ),
    dict(
        type='LinearLR',
        start_factor=1.0,
        end_factor=0.0,
        by_epoch=True,
        begin=4,
        end=10,
        convert_to_iter_based=True,
    ),
]

train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=5)
val_cfg = dict()

auto_scale_lr = dict(base_batch_size=100)
