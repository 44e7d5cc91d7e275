# Dual-BN AT at eps 48/255 (the large-eps study): training, robust validation
# and test attacks follow data_preprocessor.eps.
_base_ = ['./resnet18-w16-dualbn_1xb64_digits_pgdat.py']

data_preprocessor = dict(eps=48)
