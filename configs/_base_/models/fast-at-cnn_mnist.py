# The MNIST net of "Fast is better than free" (Wong et al. 2020,
# locuslab/fast_adversarial MNIST/mnist_net.py): Conv(16, 4x4, s2, p1) - ReLU
# - Conv(32, 4x4, s2, p1) - ReLU - FC(1568, 100) - ReLU - FC(100, 10), no
# normalizer, PyTorch's default init (the head too: init_cfg=None).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='MNISTConvNet', arch='fast-at'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=100,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg=None,
    ),
)
