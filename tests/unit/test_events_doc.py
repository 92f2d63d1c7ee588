"""docs/events.md is generated from the event classes and must match them today; every field says what it
means, so the documented stream and the emitted one cannot drift apart."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from esper_core import events
from esper_core.events import EVENT_CLASSES, Event, field_docs
from support.benchmark_scripts import load_benchmark_script

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_committed_events_doc_is_current() -> None:
    generated = load_benchmark_script("events_doc").render()
    assert DOC.read_text() == generated, "docs/events.md is stale: run `python benchmarks/events_doc.py`"


def test_every_event_class_is_listed_once_with_a_unique_type() -> None:
    defined = {obj for obj in vars(events).values() if isinstance(obj, type) and issubclass(obj, Event) and obj is not Event}
    assert set(EVENT_CLASSES) == defined
    types = [cls.type for cls in EVENT_CLASSES]
    assert len(types) == len(set(types))


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda cls: cls.type)
def test_every_field_and_event_is_described(cls: type[Event]) -> None:
    assert cls.__doc__ and cls.__doc__.strip(), f"{cls.__name__} needs a docstring (it heads its section)"
    missing = [name for name, text in field_docs(cls).items() if len(text.split()) < 2]
    assert not missing, f"{cls.__name__}: describe {missing} with described('...')"
    text = DOC.read_text()
    for field in attrs.fields(cls):
        assert f"| `{field.name}` |" in text
