# The official NoFrost recipe's label smoothing 0.1 (PGDAT.py, timm's
# LabelSmoothingCrossEntropy: (1 - 0.1) CE + 0.1 mean over classes of -log p,
# mmpretrain's mode='original'): leaves swap it in as the head's loss, which
# AdvImageClassifier applies to both the clean and the adversarial loss (the
# training attack keeps the hard-label CE).
head_loss = dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original', loss_weight=1.0)
