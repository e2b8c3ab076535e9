"""Images sent to /image, sized from their headers before anything decodes them: an
image is a compressed archive of pixels too (a 1 MB PNG can claim 30000 x 30000
pixels, a GIF thousands of frames, each decoded at the full screen size), so the
pixel count is read from the header and bounded before TensorFlow decodes it."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from .params import image_scale

#: pixels (times frames) an image may decode to: 4096 x 4096, 64 MiB as RGBA bytes
MAX_PIXELS = 4096 * 4096
#: how many labels /image answers, as TFaaS does
TOP = 5
#: JPEG start-of-frame markers (every SOFn but DHT, JPG and DAC)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageRefused(ValueError):
    """The image is not one the service decodes, or decodes to too many pixels."""


def _jpeg(data: bytes) -> int:
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width * height
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        i += 2 + length
    raise ImageRefused("the JPEG image has no frame header")


def _gif(data: bytes) -> int:
    """The logical screen's pixels times the frames (TensorFlow decodes every frame at that size)."""
    width, height = struct.unpack("<HH", data[6:10])
    i = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    frames = 0

    def blocks(i: int) -> int:  # skip data sub-blocks up to their terminator
        while i < len(data) and data[i]:
            i += data[i] + 1
        return i + 1

    while i < len(data):
        if data[i] == 0x21 and i + 1 < len(data):  # an extension: label, then sub-blocks
            i = blocks(i + 2)
        elif data[i] == 0x2C and i + 10 <= len(data):  # an image: descriptor, colour table, LZW size, sub-blocks
            packed = data[i + 9]
            i += 10 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
            i = blocks(i + 1)
            frames += 1
        else:
            break  # the trailer (0x3B) or damage: TensorFlow reports damage itself
    return width * height * max(frames, 1)


def pixels(data: bytes) -> int:
    """What the image decodes to, in pixels (times frames), from its header."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width * height
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg(data)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 13:
        return _gif(data)
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width * height)
    raise ImageRefused("not a PNG, JPEG, GIF or BMP image")


def check(data: bytes) -> None:
    """Refuse (ImageRefused) an image that would decode to more than MAX_PIXELS pixels."""
    count = pixels(data)
    if count > MAX_PIXELS:
        raise ImageRefused(f"the image decodes to {count} pixels (frames included); at most {MAX_PIXELS} "
                           "are accepted")


def predict(model: Any, data: bytes) -> np.ndarray:
    """The model's outputs for one image: decoded with the channels its params give,
    resized to its input, and taken as pixel values (0-255) as TFaaS gives them,
    divided only when the params' options say `scale=N`."""
    check(data)  # its pixel count from its header, before anything inflates it
    import tensorflow as tf  # decoding PNG/JPEG; lazily

    channels = int(model.params.get("img_channels") or 0)
    img = tf.io.decode_image(data, channels=channels, expand_animations=False)
    shape = model.input_shape
    if len(shape) == 4 and shape[1] and shape[2]:
        img = tf.image.resize(img, (shape[1], shape[2]))
    arr = tf.cast(img, tf.float32).numpy() / image_scale(model.params)
    if len(shape) == 2:
        arr = arr.reshape(-1)
    return model.predict(arr[None, ...]).reshape(-1)


def top(out: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
    """TFaaS's answer: the TOP labels by probability, highest first (outputs without
    labels.txt are labelled by their index)."""
    names = labels or [str(i) for i in range(len(out))]
    order = sorted(range(len(out)), key=lambda i: -float(out[i]))[:TOP]
    return [{"label": names[i], "probability": float(out[i])} for i in order]
