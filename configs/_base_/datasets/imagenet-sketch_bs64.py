# ImageNet-Sketch (Wang et al. 2019; 50,889 sketches of the 1000 ImageNet classes) as released:
# data/imagenet-sketch/sketch/<wnid>/*.JPEG (https://github.com/HaohanWang/ImageNet-Sketch).
# Test-only: put it after an ImageNet model base and run
#   python tools/test.py CONFIG CKPT --out imagenet-sketch.json
# All 1000 classes: labels are the ImageNet-1k indices, no logit is dropped.
# the test pipeline, preprocessor and evaluator of imagenet-r_bs64.py; only the folder differs
# (all 1000 classes: no ClassSubsetHook)
_base_ = ['./imagenet-r_bs64.py']

test_dataloader = dict(dataset=dict(type='ImageNetSketch', data_root='data/imagenet-sketch/sketch'))
custom_hooks = []
