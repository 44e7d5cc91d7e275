# Madry et al.'s MNIST schedule (mnist_challenge config.json): Adam with a
# flat lr of 1e-4 for 100,000 iterations of batch 50 (83 epochs).
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-4))
param_scheduler = []

train_cfg = dict(by_epoch=False, max_iters=100_000, val_interval=10_000)
val_cfg = dict()

auto_scale_lr = dict(base_batch_size=50)
