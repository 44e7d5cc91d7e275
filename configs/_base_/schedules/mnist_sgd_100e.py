# TRADES' MNIST schedule (yaodongyu/TRADES train_trades_mnist.py): SGD lr
# 0.01, momentum 0.9, no weight decay, batch 128, 100 epochs, lr x0.1 from
# epoch 55 (its later steps at 75 and 90 are unreachable elif branches).
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[54], gamma=0.1)

train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=10)
val_cfg = dict()

auto_scale_lr = dict(base_batch_size=128)
