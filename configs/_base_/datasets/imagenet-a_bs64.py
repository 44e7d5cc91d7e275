# ImageNet-A (Hendrycks et al. 2021; natural adversarial examples of 200 ImageNet classes,
# 7,500 images) as released: data/imagenet-a/<wnid>/*.jpg
# (https://github.com/hendrycks/natural-adv-examples). Test-only: put it after an ImageNet model
# base (a 1000-class head) and run
#   python tools/test.py CONFIG CKPT --out imagenet-a.json
# ClassSubsetHook keeps the model's logits of the 200 classes before the arg-max (the official
# eval.py's output[:, indices_in_1k]); labels are 0..199, so the standard Accuracy applies.
# the test pipeline, preprocessor and evaluator of imagenet-r_bs64.py; only the folder differs
_base_ = ['./imagenet-r_bs64.py']

test_dataloader = dict(dataset=dict(type='ImageNetA', data_root='data/imagenet-a'))
