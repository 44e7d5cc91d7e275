# ImageNet-Sketch (Wang et al. 2019; 50,889 sketches of the 1000 ImageNet classes) as released:
# data/imagenet-sketch/sketch/<wnid>/*.JPEG (https://github.com/HaohanWang/ImageNet-Sketch).
# Test-only: put it after an ImageNet model base and run
#   python tools/test.py CONFIG CKPT --out imagenet-sketch.json
# All 1000 classes: labels are the ImageNet-1k indices, no logit is dropped.
data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        type='ImageNetSketch',
        data_root='data/imagenet-sketch/sketch',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='ResizeEdge', scale=256, edge='short'),
            dict(type='CenterCrop', crop_size=224),
            dict(type='PackInputs'),
        ]),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = dict(type='Accuracy', topk=(1, 5))
