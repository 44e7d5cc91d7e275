# BN-AT with the official NoFrost recipe's label smoothing 0.1 (PGDAT.py,
# timm's LabelSmoothingCrossEntropy: (1 - 0.1) CE + 0.1 mean over classes of
# -log p, mmpretrain's mode='original'), on both the clean and the
# adversarial loss; the training attack keeps the hard-label CE. The
# label-smoothing ablation: `python tools/demo.py --study label-smoothing`.
_base_ = ['./resnet18-w16_1xb64_digits_pgdat.py']

model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='LabelSmoothLoss',
            label_smooth_val=0.1,
            mode='original',
            loss_weight=1.0,
        )
    )
)
