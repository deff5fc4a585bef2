"""The official CycleGAN data sets and pretrained generators, as published by the paper's authors.

Names and file layout follow the reference repository's download scripts
(junyanz/pytorch-CycleGAN-and-pix2pix: datasets/download_cyclegan_dataset.sh,
scripts/download_cyclegan_model.sh): ``<base>/datasets/<name>.zip`` unpacks to ``<name>/trainA`` ...
``testB``; ``<base>/pretrained_models/<name>.pth`` is one generator's bare state dict (ResNet-9, ngf 64,
instance norm), i.e. one direction only.
"""

from __future__ import annotations

import os

DEFAULT_BASE = "http://efrosgans.eecs.berkeley.edu/cyclegan"
BASE_ENV = "HARNESS_DOWNLOAD_BASE"

DATASETS = (
    "ae_photos",
    "apple2orange",
    "summer2winter_yosemite",
    "horse2zebra",
    "monet2photo",
    "cezanne2photo",
    "ukiyoe2photo",
    "vangogh2photo",
    "maps",
    "facades",
    "iphone2dslr_flower",
    "mini",
)

MODELS = (
    "apple2orange",
    "orange2apple",
    "summer2winter_yosemite",
    "winter2summer_yosemite",
    "horse2zebra",
    "zebra2horse",
    "monet2photo",
    "style_monet",
    "style_cezanne",
    "style_ukiyoe",
    "style_vangogh",
    "sat2map",
    "map2sat",
    "cityscapes_photo2label",
    "cityscapes_label2photo",
    "facades_photo2label",
    "facades_label2photo",
    "iphone2dslr_flower",
)

# Not redistributable: the authors point users to the owners' site instead.
NOT_REDISTRIBUTABLE = {
    "cityscapes": "cityscapes cannot be redistributed (licence): register and download "
    "leftImg8bit_trainvaltest.zip "
    "and gtFine_trainvaltest.zip from https://www.cityscapes-dataset.com, then arrange them as "
    "trainA/ trainB/ testA/ testB/ (the reference's datasets/prepare_cityscapes_dataset.py does this)",
}

# A reference generator (ResNet-9, ngf 64) has 11,378,179 float32 parameters (REFERENCE.md): about 43 MiB.
MODEL_BYTES = 11_378_179 * 4


def base_url(override: str | None = None) -> str:
    """--base-url, else $HARNESS_DOWNLOAD_BASE, else the authors' server; without a trailing slash."""
    return (override or os.environ.get(BASE_ENV) or DEFAULT_BASE).rstrip("/")


def dataset_url(name: str, base: str | None = None) -> str:
    return f"{base_url(base)}/datasets/{name}.zip"


def model_url(name: str, base: str | None = None) -> str:
    return f"{base_url(base)}/pretrained_models/{name}.pth"
