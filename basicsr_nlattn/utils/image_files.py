"""Image files of the data scripts: DIV2K-style bicubic LR images and PNGs that are never left truncated."""
from typing import Optional

import cv2
import numpy as np

from basicsr_nlattn.utils.atomic_write import write_bytes


def bicubic_downscale(hr_bgr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-like bicubic downscaling (with anti-aliasing, BasicSR's ``imresize``) by an integer factor, the way
    DIV2K's LR_bicubic and the benchmarks' LRbicx images were made; uint8 in, uint8 out."""
    from basicsr.utils.matlab_functions import imresize
    lr = imresize(hr_bgr.astype(np.float32) / 255., 1 / scale)
    return np.clip(np.round(lr * 255.), 0, 255).astype(np.uint8)


def write_png(path: str, image: np.ndarray, compression: Optional[int] = None) -> None:
    """Write ``image`` as a PNG under a temporary name, then rename it: a file named ``path`` is always complete,
    which is what lets the data scripts resume by looking at which files exist.

    Args:
        compression (int | None): ``cv2.IMWRITE_PNG_COMPRESSION`` (0-9), None for OpenCV's default.
    """
    params = [] if compression is None else [cv2.IMWRITE_PNG_COMPRESSION, compression]
    ok, encoded = cv2.imencode('.png', image, params)
    if not ok:
        raise OSError(f"cannot encode '{path}' as PNG")
    write_bytes(path, encoded.tobytes())
