"""PIL-based resize / to_pil_image with torchvision's semantics for PIL inputs."""

import numpy as np
from PIL import Image


def to_pil_image(pic):
    return Image.fromarray(np.asarray(pic))


def resize(img, size):
    h, w = size
    return img.resize((w, h), Image.BILINEAR)
