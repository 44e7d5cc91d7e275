# NF-ResNet-50 (timm's nf_resnet50): ImageNet-sized, 1000 classes.
# Head dropout 0.25 and drop path 0.1 as in NoFrost's official recipe.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='NFResNet', depth=50, out_indices=(3,), alpha=0.2, drop_path_rate=0.1),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='DropoutLinearClsHead',
        num_classes=1000,
        in_channels=2048,
        dropout_rate=0.25,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1),
        topk=(1, 5),
    ),
)
