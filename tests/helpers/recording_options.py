"""Options that remember which keys were read: to compare what a model reads with what the pre-flight check reads."""
import copy
from typing import Any, Dict, Optional, Set


def _wrap(value: Any, path: str, reads: Set[str]) -> Any:
    if isinstance(value, dict):
        return RecordingOptions(value, path, reads)
    if isinstance(value, list):
        return [_wrap(item, f'{path}[{index}]', reads) for index, item in enumerate(value)]
    return value


def plain(value: Any) -> Any:
    """``value`` with every RecordingOptions turned into a dict (reading nothing)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in dict.items(value)}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


class RecordingOptions(dict):
    """A dict (nested dicts too, also inside lists) that adds to ``reads`` the dotted path of every key whose value
    is asked for: ``[]``, ``get``, ``pop``, ``setdefault``, ``in``, ``items``, ``values``, and the copies
    (``dict(...)``, ``**options``, ``copy.deepcopy``), which read every key, nested ones included. Listing the keys
    alone (``for key in options``) reads no value. An absent key that is asked for counts as read: the code looked.

    Args:
        data (dict): the options.
        path (str): the dotted path of ``data`` ('' at the top).
        reads (set[str] | None): where to record; shared with the nested mappings. Default: a new set.
    """

    def __init__(self, data: Dict[str, Any], path: str = '', reads: Optional[Set[str]] = None) -> None:
        super().__init__()
        self.path = path
        self.reads: Set[str] = set() if reads is None else reads
        for key, value in data.items():
            super().__setitem__(key, _wrap(value, self._key(key), self.reads))

    def _key(self, key: Any) -> str:
        return f'{self.path}.{key}' if self.path else str(key)

    def _record(self, key: Any) -> None:
        self.reads.add(self._key(key))

    def _record_all(self) -> None:
        for key in dict.keys(self):
            self._record(key)
            value = dict.__getitem__(self, key)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, RecordingOptions):
                    item._record_all()

    def __getitem__(self, key: Any) -> Any:
        self._record(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._record(key)
        return super().get(key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        self._record(key)
        return super().pop(key, *default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._record(key)
        return super().setdefault(key, default)

    def __contains__(self, key: Any) -> bool:
        self._record(key)
        return super().__contains__(key)

    def items(self):
        for key in dict.keys(self):
            self._record(key)
        return super().items()

    def values(self):
        for key in dict.keys(self):
            self._record(key)
        return super().values()

    def __iter__(self):
        # Defined (as dict's) so that dict(options) and **options go through keys() and __getitem__, not dict's C
        # copy, which would read every value without a record.
        return super().__iter__()

    def copy(self) -> Dict[str, Any]:
        self._record_all()
        return plain(self)

    def __deepcopy__(self, memo: Dict[int, Any]) -> Dict[str, Any]:
        self._record_all()
        return copy.deepcopy(plain(self), memo)
