"""The shared validators (utils/validators.py): one message form, ``<key>: must be ..., got <value!r>``."""
import pytest

from basicsr_nlattn.utils import OptionError, validators


@pytest.mark.parametrize('check, message', [
    (lambda: validators.int_at_least('a.b', 0, 1), 'a.b: must be an int >= 1, got 0'),
    (lambda: validators.int_at_least('a.b', True, 0), 'a.b: must be an int >= 0, got True'),
    (lambda: validators.int_at_least('a.b', 5000.5, 1, whole_float=True), 'a.b: must be an int >= 1, got 5000.5'),
    (lambda: validators.int_at_least('a.b', 70000, 1, maximum=65535), 'a.b: must be an int in [1, 65535], got 70000'),
    (lambda: validators.boolean('a.b', 'yes'), "a.b: must be true or false, got 'yes'"),
    (lambda: validators.choice('a.b', 'Adamm', ['Adam']), "a.b: must be one of ['Adam'], got 'Adamm'; did you mean "
     "'Adam'?"),
    (lambda: validators.number('a.b', 1, 0, 1, high_open=True), 'a.b: must be a number in [0, 1), got 1'),
    (lambda: validators.number('a.b', 0, 0, low_open=True), 'a.b: must be a number > 0, got 0'),
    (lambda: validators.number('a.b', '2e-4', 0), "a.b: must be a number >= 0, got '2e-4' (YAML reads 2e-4 as a "
     'string: write !!float 2e-4)'),
    (lambda: validators.int_list('a.b', [3, 2], 1, increasing=True),
     'a.b: must be a non-empty list of ints >= 1 in increasing order, got [3, 2]'),
    (lambda: validators.number_list('a.b', [1], length=2, length_of='one per period'),
     'a.b: must be a list of 2 numbers (one per period), got [1]'),
    (lambda: validators.mapping('a.b', [1], example='{size: 8}'), 'a.b: must be a mapping like {size: 8}, got [1]'),
    (lambda: validators.mapping('a.b', {
        'x': 1,
        'y': 2
    }, ['x']), "a.b: unknown key(s) ['y']; allowed: ['x']"),
    (lambda: validators.typed_mapping('a.b', {'lr': 1}, 'an optimizer'),
     "a.b: must be a mapping with the type of an optimizer and its arguments, got {'lr': 1}"),
])
def test_each_validator_names_the_key_what_it_must_be_and_the_value(check, message):
    with pytest.raises(OptionError) as caught:
        check()
    assert str(caught.value) == message


def test_valid_values_come_back_converted():
    assert validators.int_at_least('a', 5e3, 1, whole_float=True) == 5000
    assert isinstance(validators.int_at_least('a', 5e3, 1, whole_float=True), int)
    assert validators.number('a', 1, 0) == 1.0 and validators.int_list('a', (1, 2), increasing=True) == [1, 2]
    assert validators.choice('a', None, [None, 'cpu']) is None and validators.optional_string('a', None) is None
