# TRADES' SmallCNN (Zhang et al. 2019, yaodongyu/TRADES models/small_cnn.py):
# 3x3 convs 32, 32, max pool, 64, 64, max pool, FC 200, dropout 0.5, FC 200,
# FC 10; Kaiming-normal convs (the backbone's default for this arch) and a
# zero-initialised last layer, as TRADES.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='MNISTConvNet', arch='smallcnn'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=200,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        init_cfg=dict(type='Constant', layer='Linear', val=0.0),
    ),
)
