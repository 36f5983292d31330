"""Small validators of option values, shared by every parser of the package: each returns the value (converted
where the type allows) or raises :class:`OptionError` in the one form ``<full key>: must be ..., got <value!r>``.

A value that YAML read as a string but that reads as a number (PyYAML takes ``2e-4``, without a decimal point, for a
string) gets the hint to write ``!!float 2e-4``, as BasicSR's own option files do.
"""
import difflib
from typing import Any, Collection, Iterable, List, Mapping, Optional, Sequence

from basicsr_nlattn.utils.errors import OptionError

__all__ = [
    'boolean', 'choice', 'int_at_least', 'int_list', 'mapping', 'number', 'number_list', 'optional_string',
    'reject_unknown_keys', 'typed_mapping'
]


def _yaml_string_hint(value: Any) -> str:
    """A hint for a string that YAML did not read as a number, e.g. ``'2e-4'``; '' for anything else."""
    if not isinstance(value, str):
        return ''
    try:
        float(value)
    except ValueError:
        return ''
    return f' (YAML reads {value} as a string: write !!float {value})'


def _refuse(key: str, expected: str, value: Any, note: str = '') -> OptionError:
    return OptionError(f'{key}: must be {expected}{note}, got {value!r}{_yaml_string_hint(value)}')


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _range_text(low: Optional[float], high: Optional[float], low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ''


def _in_range(value: float, low: Optional[float], high: Optional[float], low_open: bool, high_open: bool) -> bool:
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    return above and below


def int_at_least(key: str,
                 value: Any,
                 minimum: int,
                 note: str = '',
                 maximum: Optional[int] = None,
                 whole_float: bool = False) -> int:
    """An int >= ``minimum`` (and <= ``maximum`` when given); ``note`` follows the expectation in the message, e.g.
    ``' (or absent: keep all)'``. With ``whole_float`` a float of integral value counts (BasicSR's option files write
    iteration counts as ``!!float 5e3``) and is returned as an int."""
    if whole_float and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        expected = f'an int >= {minimum}' if maximum is None else f'an int in [{minimum}, {maximum}]'
        raise _refuse(key, expected, value, note)
    return value


def boolean(key: str, value: Any) -> bool:
    """``true`` or ``false`` (not 0, 1 or a string)."""
    if not isinstance(value, bool):
        raise _refuse(key, 'true or false', value)
    return value


def choice(key: str, value: Any, choices: Sequence[Any], note: str = '') -> Any:
    """One of ``choices``; the message lists them and the close matches of a misspelt string."""
    if isinstance(value, bool) or value not in choices:
        close = difflib.get_close_matches(value, [str(c) for c in choices], n=3) if isinstance(value, str) else []
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ''
        raise OptionError(f'{key}: must be one of {list(choices)}{note}, got {value!r}{hint}')
    return value


def number(key: str,
           value: Any,
           low: Optional[float] = None,
           high: Optional[float] = None,
           *,
           low_open: bool = False,
           high_open: bool = False,
           note: str = '') -> float:
    """An int or float in the range given by ``low`` and ``high`` (closed unless ``low_open`` / ``high_open``)."""
    if not _is_number(value) or not _in_range(value, low, high, low_open, high_open):
        bounds = _range_text(low, high, low_open, high_open)
        raise _refuse(key, f'a number {bounds}'.rstrip(), value, note)
    return float(value)


def int_list(key: str,
             value: Any,
             minimum: Optional[int] = None,
             increasing: bool = False,
             allow_empty: bool = False) -> List[int]:
    """A list of ints (each >= ``minimum`` when given), in strictly increasing order when ``increasing``."""
    ok = isinstance(value, (list, tuple)) and (allow_empty or len(value) > 0) and all(_is_int(v) for v in value)
    ok = ok and (minimum is None or all(v >= minimum for v in value))
    ok = ok and (not increasing or all(a < b for a, b in zip(value, value[1:])))
    if not ok:
        expected = 'a list of ints' if allow_empty else 'a non-empty list of ints'
        expected += f' >= {minimum}' if minimum is not None else ''
        expected += ' in increasing order' if increasing else ''
        raise _refuse(key, expected, value)
    return list(value)


def number_list(key: str,
                value: Any,
                low: Optional[float] = None,
                length: Optional[int] = None,
                length_of: str = '') -> List[float]:
    """A list of numbers (each >= ``low`` when given); of ``length`` entries when given (``length_of`` names what
    sets it, e.g. ``'one per entry of restarts'``)."""
    ok = isinstance(value, (list, tuple)) and all(_is_number(v) for v in value)
    ok = ok and (low is None or all(v >= low for v in value))
    if not ok:
        raise _refuse(key, 'a list of numbers' + (f' >= {low}' if low is not None else ''), value)
    if length is not None and len(value) != length:
        raise _refuse(key, f'a list of {length} numbers ({length_of})' if length_of else f'{length} numbers', value)
    return [float(v) for v in value]


def optional_string(key: str, value: Any) -> Optional[str]:
    """A string or null."""
    if value is not None and not isinstance(value, str):
        raise _refuse(key, 'a string or null', value)
    return value


def reject_unknown_keys(key: str, value: Mapping[str, Any], allowed: Iterable[str], note: str = '') -> None:
    """Refuse the keys of ``value`` that are not in ``allowed``, naming them and the allowed ones."""
    allowed = sorted(set(allowed))
    unknown = sorted(name for name in value if name not in allowed)
    if unknown:
        raise OptionError(f'{key}: unknown key(s) {unknown}{note}; allowed: {allowed}')


def mapping(key: str, value: Any, allowed: Optional[Collection[str]] = None, example: str = '') -> Mapping[str, Any]:
    """A mapping (the keys of an option section), with only ``allowed`` keys when given; ``example`` shows one in
    the message, e.g. ``'{size: 64, overlap: 16}'``."""
    if not isinstance(value, Mapping):
        raise _refuse(key, 'a mapping' + (f' like {example}' if example else ''), value)
    if allowed is not None:
        reject_unknown_keys(key, value, allowed)
    return value


def typed_mapping(key: str, value: Any, what: str = 'a registered class') -> str:
    """A mapping with a ``type`` and the arguments of that type (a loss, an optimizer...); returns the type. ``what``
    names the kind in the message, e.g. ``'a loss'``."""
    if not isinstance(value, Mapping) or 'type' not in value:
        raise _refuse(key, f'a mapping with the type of {what} and its arguments', value)
    if not isinstance(value['type'], str):
        raise _refuse(f'{key}.type', f'the name of {what}', value['type'])
    return value['type']
