# NoFrost at eps 64/255 (the large-eps study, `python tools/demo.py --study eps`):
# nf-resnet18-w16_1xb64_digits_pgdat.py with training, robust validation and test
# attacks at eps 64 (they all follow data_preprocessor.eps).
_base_ = ['./nf-resnet18-w16_1xb64_digits_pgdat.py']

data_preprocessor = dict(eps=64)
# a looser AGC trains NoFrost faster at large eps (configs/demo/README.md)
optim_wrapper = dict(clip_grad=dict(clip_factor=0.04))
