"""The shipped ImageNet / ImageNet-R / ImageNet-A class lists against their sources."""
import os.path as osp

import pytest
from mmpretrain.datasets.categories import IMAGENET_CATEGORIES

from nofrost_mm.datasets.imagenet_class_lists import (imagenet_indices,
                                                      load_wnids)

# ImageNet-1k indices of the ImageNet-R classes, from the comment
# `imagenet_r_indices` of https://github.com/hendrycks/imagenet-r/blob/master/eval.py
IMAGENET_R_INDICES = [
    1, 2, 4, 6, 8, 9, 11, 13, 22, 23, 26, 29, 31, 39, 47, 63, 71, 76, 79, 84, 90, 94, 96,
    97, 99, 100, 105, 107, 113, 122, 125, 130, 132, 144, 145, 147, 148, 150, 151, 155, 160,
    161, 162, 163, 171, 172, 178, 187, 195, 199, 203, 207, 208, 219, 231, 232, 234, 235,
    242, 245, 247, 250, 251, 254, 259, 260, 263, 265, 267, 269, 276, 277, 281, 288, 289,
    291, 292, 293, 296, 299, 301, 308, 309, 310, 311, 314, 315, 319, 323, 327, 330, 334,
    335, 337, 338, 340, 341, 344, 347, 353, 355, 361, 362, 365, 366, 367, 368, 372, 388,
    390, 393, 397, 401, 407, 413, 414, 425, 428, 430, 435, 437, 441, 447, 448, 457, 462,
    463, 469, 470, 471, 472, 476, 483, 487, 515, 546, 555, 558, 570, 579, 583, 587, 593,
    594, 596, 609, 613, 617, 621, 629, 637, 657, 658, 701, 717, 724, 763, 768, 774, 776,
    779, 780, 787, 805, 812, 815, 820, 824, 833, 847, 852, 866, 875, 883, 889, 895, 907,
    928, 931, 932, 933, 934, 936, 937, 943, 945, 947, 948, 949, 951, 953, 954, 957, 963,
    965, 967, 980, 981, 983, 988]
# ImageNet-1k indices k with thousand_k_to_200[k] != -1 in
# https://github.com/hendrycks/natural-adv-examples/blob/master/eval.py
IMAGENET_A_INDICES = [
    6, 11, 13, 15, 17, 22, 23, 27, 30, 37, 39, 42, 47, 50, 57, 70, 71, 76, 79, 89, 90, 94,
    96, 97, 99, 105, 107, 108, 110, 113, 124, 125, 130, 132, 143, 144, 150, 151, 207, 234,
    235, 254, 277, 283, 287, 291, 295, 298, 301, 306, 307, 308, 309, 310, 311, 313, 314,
    315, 317, 319, 323, 324, 326, 327, 330, 334, 335, 336, 347, 361, 363, 372, 378, 386,
    397, 400, 401, 402, 404, 407, 411, 416, 417, 420, 425, 428, 430, 437, 438, 445, 456,
    457, 461, 462, 470, 472, 483, 486, 488, 492, 496, 514, 516, 528, 530, 539, 542, 543,
    549, 552, 557, 561, 562, 569, 572, 573, 575, 579, 589, 606, 607, 609, 614, 626, 627,
    640, 641, 642, 643, 658, 668, 677, 682, 684, 687, 701, 704, 719, 736, 746, 749, 752,
    758, 763, 765, 768, 773, 774, 776, 779, 780, 786, 792, 797, 802, 803, 804, 813, 815,
    820, 823, 831, 833, 835, 839, 845, 847, 850, 859, 862, 870, 879, 880, 888, 890, 897,
    900, 907, 913, 924, 932, 933, 934, 937, 943, 945, 947, 951, 954, 956, 957, 959, 971,
    972, 980, 981, 984, 986, 987, 988]
# first and last entries of all_wnids in hendrycks/imagenet-r eval.py
IMAGENET_HEAD = [
    'n01440764', 'n01443537', 'n01484850', 'n01491361', 'n01494475', 'n01496331',
    'n01498041', 'n01514668', 'n01514859', 'n01518878', 'n01530575', 'n01531178']
IMAGENET_TAIL = [
    'n12267677', 'n12620546', 'n12768682', 'n12985857', 'n12998815', 'n13037406',
    'n13040303', 'n13044778', 'n13052670', 'n13054560', 'n13133613', 'n15075141']


def test_imagenet_list_is_the_sorted_1000_classes():
    wnids = load_wnids('imagenet')
    assert len(wnids) == 1000 == len(IMAGENET_CATEGORIES)
    assert list(wnids) == sorted(set(wnids))
    assert list(wnids[:12]) == IMAGENET_HEAD and list(wnids[-12:]) == IMAGENET_TAIL


@pytest.mark.parametrize('name, official', [('imagenet-r', IMAGENET_R_INDICES),
                                            ('imagenet-a', IMAGENET_A_INDICES)])
def test_subset_lists_match_the_official_indices(name, official):
    assert len(official) == 200
    assert list(imagenet_indices(load_wnids(name))) == official


@pytest.mark.parametrize('name, timm_file', [
    ('imagenet', 'imagenet_synsets.txt'), ('imagenet-r', 'imagenet_r_synsets.txt'),
    ('imagenet-a', 'imagenet_a_synsets.txt')])
def test_lists_equal_timms_copies(name, timm_file):
    timm = pytest.importorskip('timm')
    path = osp.join(osp.dirname(timm.__file__), 'data', '_info', timm_file)
    if not osp.isfile(path):
        pytest.skip(f'timm {timm.__version__} has no {timm_file}')
    with open(path) as f:
        assert load_wnids(name) == tuple(line.strip() for line in f if line.strip())


def test_unknown_wnid_is_named():
    with pytest.raises(ValueError, match="'n99999999' is not an ImageNet-1k WordNet id"):
        imagenet_indices(['n01440764', 'n99999999'])
