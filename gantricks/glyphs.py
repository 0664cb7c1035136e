"""``glyphs``: the embedded, offline default dataset.

Ten classes of 28x28 grayscale digit glyphs, rendered with Pillow's built-in scalable font
at three stroke widths, then placed under random affine jitter (rotation, scale, shear,
translation) with a seeded torch generator. The same seed gives the same images on every
machine with the same torch version; 70,000 images take about a second on a laptop CPU.
Known classes make mode coverage and an in-domain score measurable, as on MNIST.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

SIZE = 28
_CANVAS = 2 * SIZE  # render at 2x and average-pool down: cheap anti-aliasing
_STROKES = (0, 1, 2)
NUM_CLASSES = 10
TRAIN_SIZE = 60_000
TEST_SIZE = 10_000


def templates() -> torch.Tensor:
    """(10 * len(_STROKES), 1, 56, 56) float glyph masks in [0, 1]; index = digit * 3 + stroke."""
    font = ImageFont.load_default(size=52)
    masks = []
    for digit in range(NUM_CLASSES):
        for stroke in _STROKES:
            img = Image.new("L", (_CANVAS, _CANVAS), 0)
            draw = ImageDraw.Draw(img)
            text = str(digit)
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
            x = (_CANVAS - (right - left)) / 2 - left
            y = (_CANVAS - (bottom - top)) / 2 - top
            draw.text((x, y), text, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
            masks.append(torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8))
    out = torch.stack(masks).view(-1, 1, _CANVAS, _CANVAS).float() / 255.0
    return out


def generate(n: int, seed: int, chunk: int = 2_000) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` glyph images (uint8, (n, 1, 28, 28)) and their labels (int64, (n,))."""
    gen = torch.Generator().manual_seed(seed)
    base = templates()
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=gen)
    stroke = torch.randint(0, len(_STROKES), (n,), generator=gen)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(15)
    scale = 0.8 + torch.rand(n, generator=gen) * 0.35
    shear = (torch.rand(n, generator=gen) * 2 - 1) * 0.25
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * 0.12
    contrast = 0.75 + torch.rand(n, generator=gen) * 0.25
    # theta maps output coordinates to input coordinates, so it is the inverse transform:
    # inverse of (scale * rotation * shear) applied around the centre, plus a shift.
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shr = torch.eye(2).repeat(n, 1, 1)
    shr[:, 0, 1] = shear
    forward = scale.view(n, 1, 1) * rot @ shr
    theta = torch.cat([torch.linalg.inv(forward), shift.unsqueeze(-1)], dim=-1)
    images = torch.empty(n, 1, SIZE, SIZE, dtype=torch.uint8)
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        src = base[labels[sl] * len(_STROKES) + stroke[sl]]
        grid = F.affine_grid(theta[sl], [src.shape[0], 1, _CANVAS, _CANVAS], align_corners=False)
        warped = F.grid_sample(
            src, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        small = F.avg_pool2d(warped, 2) * contrast[sl].view(-1, 1, 1, 1)
        images[sl] = (small * 255).round().clamp(0, 255).to(torch.uint8)
    return images, labels


@lru_cache(maxsize=4)
def load(train: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The train (60,000) or test (10,000) split; the splits use different seeds.

    Cached per process (callers must not modify the tensors in place).
    """
    if train:
        return generate(TRAIN_SIZE, seed=2 * seed)
    return generate(TEST_SIZE, seed=2 * seed + 1)
