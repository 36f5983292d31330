"""One atomic write for every file the package writes: the whole new file, or the previous one untouched."""
import os

import pytest

from basicsr_nlattn.utils.atomic_write import atomic_write, is_temporary_name, remove_temporaries, write_text


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


def test_the_temporaries_left_by_a_kill_are_found_by_the_name_atomic_write_gives_them(tmp_path):
    """What a SIGKILL inside the block would leave, matched by the pattern beside ``atomic_write`` (100 names, so
    that every kind of random character is seen), and nothing else: a user's ``.notes.tmp``, ``foo.tmp``, a name
    without the random part, a folder of that name."""
    left = []
    for number in range(100):
        with atomic_write(str(tmp_path / f'{number}.state')) as temporary:
            assert is_temporary_name(os.path.basename(temporary)), temporary
            os.link(temporary, temporary + '.kept')
        os.rename(temporary + '.kept', temporary)
        left.append(temporary)
    others = ['.notes.tmp', 'foo.tmp', '.4.state.tmp', '.4.state.abcdefghi.tmp', 'net_g_4.pth.abcdefgh.tmp']
    for name in others:
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / '.5.state.abcd1234.tmp').mkdir()
    assert sorted(remove_temporaries([str(tmp_path), str(tmp_path / 'missing')])) == sorted(left)
    assert sorted(os.listdir(tmp_path)) == sorted(others + ['.5.state.abcd1234.tmp'] +
                                                  [f'{number}.state' for number in range(100)])
