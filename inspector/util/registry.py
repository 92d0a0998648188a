"""Plugins registered by the type name the config uses: frame sources, detectors, VLM backends.

A plugin is one module that decorates its factory with `REGISTRY.register("name")`; the modules
of the built-in plugins are imported the first time a name is looked up (not at import time: the
plugins import the package that owns the registry)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from inspector.errors import InspectorError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    def __init__(self, kind: str, error: type[InspectorError], builtins: tuple[str, ...] = ()):
        self.kind, self.error, self.builtins = kind, error, builtins
        self._plugins: dict[str, F] = {}
        self._loaded = False

    def register(self, type_name: str) -> Callable[[F], F]:
        def deco(factory: F) -> F:
            if self._plugins.get(type_name, factory) is not factory:
                raise ValueError(f"{self.kind} type {type_name!r} is registered twice")
            self._plugins[type_name] = factory
            return factory
        return deco

    def get(self, type_name: str) -> F:
        self._load()
        try:
            return self._plugins[type_name]
        except KeyError:
            raise self.error(f"unknown {self.kind} type {type_name!r}; known: {self.names()}") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._plugins)

    def _load(self) -> None:
        if not self._loaded:
            for module in self.builtins:
                importlib.import_module(module)
            self._loaded = True
