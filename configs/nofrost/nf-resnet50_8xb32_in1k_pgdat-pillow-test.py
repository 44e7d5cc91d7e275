# Testing the released official NoFrost checkpoint (timm nf_resnet50, converted
# by tools/model_converters/timm_nfresnet_to_mmpretrain.py) with the official
# preprocessing: the official test.py decodes with PIL and resizes with PIL's
# antialiased bilinear (torchvision Resize(256) + CenterCrop(224)); the base
# config decodes with cv2 and resizes without antialiasing, which changes
# the inputs the released weights see. Same short-edge rounding (int) and
# centre offsets as torchvision.
#   python tools/test.py configs/nofrost/nf-resnet50_8xb32_in1k_pgdat-pillow-test.py nofrost.pth
_base_ = ['./nf-resnet50_8xb32_in1k_pgdat.py']

test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow', interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
