# The MNIST net of Madry et al. 2018 (MadryLab/mnist_challenge model.py):
# Conv(32, 5x5, same) - ReLU - max pool 2 - Conv(64, 5x5, same) - ReLU - max
# pool 2 - FC(3136, 1024) - ReLU - FC(1024, 10), no normalizer.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='MNISTConvNet', arch='madry'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg=None,
    ),
)
