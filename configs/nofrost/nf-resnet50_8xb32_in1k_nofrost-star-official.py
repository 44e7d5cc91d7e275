# NoFrost* as the official CRT_TDAT.py trains it (its README: `CRT.py --eps 8
# --steps 10 --Lambda 0.5 --md nf_resnet50`, defaults: 30 epochs, batch 255,
# cosine), beside our nf-resnet50_8xb32_in1k_nofrost-star.py (README:
# "NoFrost*: ours and the official"). Three views of every image, each
# cropped and flipped on its own (RandomResizedCrop 224, scale 0.08-1):
#   - the original;
#   - DeepAugment: the official dataset pairs ImageNet index i with index i of
#     ConcatDataset([EDSR, CAE]) and has min(len(ImageNet), len(EDSR) +
#     len(CAE)) items, so only EDSR copies are ever drawn: EDSR only here;
#   - "texture-debiased": the original image again, crop scale 0.64-1, flip,
#     and with probability 0.5 SimCLR's colour distortion (colour jitter
#     0.8/0.8/0.8/0.2 with probability 0.8, grayscale with probability 0.2);
#     no stylized images.
# Loss: (CE(original) + CE(EDSR) + CE(texture) + CE(adv)) / 4, label
# smoothing 0.1, i.e. 0.75 x the mean clean loss of the views + 0.25 x the
# adversarial loss. One difference is left: the official attacks the
# original view only, this config every view (adv_loss_weight=0.25 on the
# mean over the three views' adversarial copies: the same 25% share, three
# times the attack cost).
# Batch: int(int(255 / 8) / 3) = 10 samples per GPU and view, lr 0.1 x 255 /
# 256. Robust validation: PGD-10 with the training step (1/255) after epochs
# 1, 8, 15, 22 and 25-30 (0-based `epoch % 7 == 0 or epoch >=
# int(0.8 * epochs)`).
_base_ = ['./nf-resnet50_8xb32_in1k_nofrost-star.py']

texture_debiased_pipeline = [
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.64, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandomApply',
        prob=0.5,
        transforms=[
            dict(
                type='RandomApply',
                prob=0.8,
                transforms=[
                    dict(type='ColorJitter', brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)
                ],
            ),
            dict(type='RandomGrayscale', prob=0.2, keep_channels=True),
        ],
    ),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=10,  # samples per GPU; x 3 views = 30 images
    dataset=dict(
        views=dict(
            _delete_=True,
            deepaugment_edsr='data/imagenet-DeepAug-EDSR/train',
            texture_debiased='data/imagenet/train',
        ),
        shared_augmentation=False,
        view_pipelines=dict(texture_debiased=texture_debiased_pipeline),
    ),
)
model = dict(adv_loss_weight=0.25)
optim_wrapper = dict(optimizer=dict(lr=0.1 * 255 / 256))
# --auto-scale-lr: 8 GPUs x 10 samples is the official batch
auto_scale_lr = dict(base_batch_size=80)
custom_hooks = [
    dict(
        _base_.at_hook,
        adv_val_interval=7,
        adv_val_offset=1,
        adv_val_last=0.2,
        val_attack=dict(type='PGDAttack', steps=10, step_size=1),
    )
]
