# MNIST through mmpretrain's own dataset: the four uncompressed official IDX
# files in data/mnist (write them offline with
# `python tools/dataset_converters/prepare_mnist.py`; any copy of the official
# files works unchanged). 60000 training images, 10000 test images, 28x28, 1
# channel, no augmentation (as fast_adversarial, mnist_challenge and TRADES).
# Pixels reach the model in [0, 1] (mean 0, std 255): the attacks' [0, 1]
# space is the pixel space, so eps=76.5 (pixel units of 255) is eps 0.3.
# mmpretrain's MNIST picks its files by `test_mode`, not `split`: both set.
dataset_type = 'MNIST'
data_root = 'data/mnist'
data_preprocessor = dict(num_classes=10, mean=[0.0], std=[255.0], to_rgb=False)

train_pipeline = [dict(type='PackInputs')]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=100,
    num_workers=0,
    persistent_workers=False,  # mmpretrain's tools/train.py would set True
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        test_mode=False,
        download=False,
        pipeline=train_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
# monitoring only, on the first 1000 test images: no choice is made on it
# (the last checkpoint is the result, as in the papers, which have no val set)
val_dataloader = dict(
    batch_size=500,
    num_workers=0,
    persistent_workers=False,  # mmpretrain's tools/train.py would set True
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        test_mode=True,
        download=False,
        indices=1000,
        pipeline=test_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1,))

test_dataloader = dict(
    batch_size=500,
    num_workers=0,
    persistent_workers=False,  # mmpretrain's tools/train.py would set True
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        test_mode=True,
        download=False,
        pipeline=test_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = val_evaluator
test_cfg = dict()
