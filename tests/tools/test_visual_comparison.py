"""The demo's visual comparison: four panels per image (LR nearest, bicubic, network, HR), the same centred crop."""
import numpy as np

from basicsr_nlattn.tools.visual_comparison import Comparison, centre_crop_box, comparison_figure


def test_four_panels_per_image_with_psnr_titles_and_the_same_crop():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    lr = hr[::2, ::2]
    items = [Comparison('a', lr, hr, hr, hr, 25.123, 27.456), Comparison('b', lr, hr, hr, hr, 20.0, 21.0)]
    figure = comparison_figure(items, crop=16, network_label='ENLCN')
    panels = [ax for ax in figure.axes if ax.get_images()]
    assert len(panels) == 8
    assert [ax.get_title() for ax in panels[:4]] == ['a: LR (nearest)', 'bicubic 25.12 dB', 'ENLCN 27.46 dB', 'HR']
    top, left, bottom, right = centre_crop_box(40, 60, 16)
    assert (top, left, bottom, right) == (12, 22, 28, 38)
    np.testing.assert_array_equal(panels[3].get_images()[0].get_array(), hr[12:28, 22:38])
    # LR shown nearest-upsampled: each LR pixel covers 2 x 2 HR pixels of the crop
    np.testing.assert_array_equal(panels[0].get_images()[0].get_array(),
                                  np.repeat(np.repeat(lr, 2, 0), 2, 1)[12:28, 22:38])
    assert centre_crop_box(10, 8, 96) == (0, 0, 10, 8)
