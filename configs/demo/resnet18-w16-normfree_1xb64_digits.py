# The demo's BN ResNet made normalizer-free by changing one key: the backbone
# is wrapped in NormFreeConverter (BN removed, scaled-WS convs, residual
# branches scaled by alpha/beta). NF nets like AGC (NFNets), so the optimizer
# wrapper clips unit-wise; the classifier (head.fc) is left unclipped.
_base_ = ['./resnet18-w16_1xb64_digits.py']

model = dict(
    backbone=dict(
        _delete_=True, type='NormFreeConverter', backbone=_base_.model.backbone, alpha=0.2
    )
)

optim_wrapper = dict(
    type='AGCOptimWrapper',
    clip_grad=dict(type='agc', clip_factor=0.01, eps=1e-3, exclude=('head.fc',)),
)
