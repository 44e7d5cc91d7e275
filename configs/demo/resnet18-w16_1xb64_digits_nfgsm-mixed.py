# N-FGSM with the mixed loss 0.5 CE(clean) + 0.5 CE(adv) of the PGD-5 config,
# for the single-step study (`tools/demo.py --study fast`): the clean pass
# costs about 3 of the 8 standard-iteration units of an N-FGSM iteration
# (benchmarks/README.md).
_base_ = ['./resnet18-w16_1xb64_digits_nfgsm.py']

model = dict(adv_loss_weight=0.5)
