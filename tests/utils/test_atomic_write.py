"""One atomic write for every file the package writes: the whole new file, or the previous one untouched."""
import os

import pytest

from basicsr_nlattn.utils.atomic_write import atomic_write, write_text


def test_a_completed_write_replaces_the_file(tmp_path):
    path = tmp_path / 'sub' / 'table.md'
    write_text(str(path), 'first')
    write_text(str(path), 'second')
    assert path.read_text() == 'second'
    assert os.listdir(tmp_path / 'sub') == ['table.md']


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / 'model.onnx'
    path.write_bytes(b'previous')
    with pytest.raises(ValueError, match='check failed'):
        with atomic_write(str(path)) as temporary:
            assert os.path.dirname(temporary) == str(tmp_path) and os.path.basename(temporary).startswith(
                '.model.onnx.')
            with open(temporary, 'wb') as file:
                file.write(b'half')
            raise ValueError('check failed')
    assert path.read_bytes() == b'previous'
    assert os.listdir(tmp_path) == ['model.onnx']
