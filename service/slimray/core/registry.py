"""A name -> class registry that resolves a name, a config dict or an instance to an object.

Keras-style `get()` for criteria, schedules and normalizers, so configs stay plain data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Configurable:
    """Keras-style config object: `from_config(get_config())` rebuilds an equal object."""

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Registry(Generic[T]):
    """Short names to classes; `get` takes a name, `{"class_name", "config"}` or an instance."""

    def __init__(self, kind: str, base: type[T]):
        self.kind = kind
        self.base = base
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: make `name` resolve to the class."""

        def wrap(cls: type[T]) -> type[T]:
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise TypeError(f"A {self.kind} must subclass {self.base.__name__}. Received: {cls!r}")
            self._classes[name] = cls
            cls.registered_name = name  # type: ignore[attr-defined]
            return cls

        return wrap

    def names(self) -> list[str]:
        return sorted(self._classes)

    def lookup(self, name: str) -> type[T]:
        try:
            return self._classes[name]
        except KeyError:
            raise ValueError(f"Unknown {self.kind} {name!r}. Known: {', '.join(self.names())}") from None

    def get(self, identifier: Any) -> T:
        """Resolve a name, a serialized dict or an instance to an instance."""
        if isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, str):
            return self.lookup(identifier)()
        if isinstance(identifier, dict):
            if "class_name" not in identifier:
                raise ValueError(f"A serialized {self.kind} needs 'class_name'. Received: {identifier!r}")
            cls = self.lookup(identifier["class_name"])
            return cls.from_config(dict(identifier.get("config", {})))  # type: ignore[attr-defined]
        raise TypeError(
            f"Cannot interpret {identifier!r} as a {self.kind}: give a name "
            f"({', '.join(self.names())}), a dict with 'class_name' or an instance."
        )

    def serialize(self, obj: T) -> dict[str, Any]:
        """The dict form that `get` turns back into an equal object."""
        name = getattr(type(obj), "registered_name", None)
        if name is None or self._classes.get(name) is not type(obj):
            raise ValueError(f"{type(obj).__name__} is not a registered {self.kind}")
        return {"class_name": name, "config": obj.get_config()}  # type: ignore[attr-defined]
