"""The README's stock MNIST model: mmpretrain's LeNet5 under AdvImageClassifier."""


def stock_lenet5_classifier():
    """Build mmpretrain's LeNet5 (one image's logits squeezed to (K,)) as the
    README's stock config with the plug-in's keys builds it."""
    from mmpretrain.registry import MODELS

    return MODELS.build(
        dict(
            type='AdvImageClassifier',
            adv_loss_weight=1.0,
            backbone=dict(type='LeNet5', num_classes=10),
            neck=None,
            head=dict(type='ClsHead', loss=dict(type='CrossEntropyLoss')),
            data_preprocessor=dict(
                type='PGDDataPreprocessor',
                eps=76.5,
                mean=[33.46],
                std=[78.87],
                num_classes=10,
                attack=dict(type='FGSMRS', clip_start=False),
            ),
        )
    )
