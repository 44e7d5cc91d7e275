# ImageNet-R (Hendrycks et al. 2021; renditions of 200 ImageNet classes, 30,000 images) as released:
# data/imagenet-r/<wnid>/*.jpg (https://github.com/hendrycks/imagenet-r). Test-only: put it after an
# ImageNet model base (a 1000-class head) and run
#   python tools/test.py CONFIG CKPT --out imagenet-r.json
# ClassSubsetHook keeps the model's logits of the 200 classes before the arg-max (the official
# eval.py's output[:, imagenet_r_mask]); labels are 0..199, so the standard Accuracy applies.
data_preprocessor = dict(
    num_classes=1000, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True
)

test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        type='ImageNetR',
        data_root='data/imagenet-r',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='ResizeEdge', scale=256, edge='short'),
            dict(type='CenterCrop', crop_size=224),
            dict(type='PackInputs'),
        ],
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = dict(type='Accuracy', topk=(1, 5))
custom_hooks = [dict(type='ClassSubsetHook')]
