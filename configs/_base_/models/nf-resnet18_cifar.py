# NF-ResNet-18 for small inputs (32x32 CIFAR, the demo's 16x16 digits; 3x3
# stem, no max pool), 10 classes.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='NFResNet_CIFAR', depth=18, out_indices=(3,), alpha=0.2, drop_path_rate=0.0),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='DropoutLinearClsHead',
        num_classes=10,
        in_channels=512,
        dropout_rate=0.25,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
    ),
)
