"""One error type for bad project data (labels, dataset files, predictions), naming where it is."""

from __future__ import annotations

__all__ = [
    "DataError",
]


class DataError(ValueError):
    """Bad input data: says which file, which record and which field.

    >>> str(DataError("must be a number", source="a.json", record=3, field="duration"))
    'a.json: record 3: field duration: must be a number'
    """

    def __init__(self, message: str, *, source: str | None = None, record: object = None, field: str | None = None):
        self.message = message
        self.source = source
        self.record = record
        self.field = field
        super().__init__(self._text())

    def _text(self) -> str:
        parts = []
        if self.source is not None:
            parts.append(str(self.source))
        if self.record is not None:
            parts.append(f"record {self.record}")
        if self.field is not None:
            parts.append(f"field {self.field}")
        parts.append(self.message)
        return ": ".join(parts)

    def located(self, *, source: str | None = None, record: object = None) -> DataError:
        """A copy (same class) with the file / record filled in where they were not known yet."""
        return type(self)(
            self.message,
            source=self.source if self.source is not None else source,
            record=self.record if self.record is not None else record,
            field=self.field,
        )
