# N-FGSM adversarial training with the mixed loss of the PGD-5 config (the
# NoFrost loss 0.5 CE(clean) + 0.5 CE(adv) in one concatenated pass):
# nf-resnet18-w16_1xb64_digits_nfgsm.py with adv_loss_weight=0.5, i.e.
# nf-resnet18-w16_1xb64_digits_pgdat.py with the N-FGSM attack.
# Kept for the single-step study (tools/demo.py --study fast): the clean
# pass costs about 3 of the 8 standard-iteration units of an N-FGSM
# iteration (benchmarks/README.md); in the study this trained in 0.60-0.72
# of the PGD-5 config's time.
_base_ = ['./nf-resnet18-w16_1xb64_digits_nfgsm.py']

data_preprocessor = dict(adv_loss_weight=0.5)
