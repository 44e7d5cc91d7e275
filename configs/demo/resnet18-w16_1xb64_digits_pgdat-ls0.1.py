# BN-AT with the official NoFrost recipe's label smoothing 0.1 on both the
# clean and the adversarial loss. The label-smoothing ablation:
# `python tools/demo.py --study label-smoothing`.
_base_ = ['./resnet18-w16_1xb64_digits_pgdat.py', '../_base_/models/losses/label-smooth0.1.py']

model = dict(head=dict(loss=dict(_delete_=True, **_base_.head_loss)))
