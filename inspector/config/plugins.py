"""The config models of one kind of plugin (sources, detectors, reasoners, event sinks), by the
type name a config file gives, and the tagged union pydantic validates a section with.

The union is built from what was added, so a new plugin's settings are one decorated class: the
section's union, the error paths of `load_config` and the check that every configurable type has
a factory (`Registry.check`, in the tests) all follow from it. The models stay in the config
layer, apart from the plugins' code, so that reading a config never imports OpenCV, onnxruntime
or llama.cpp.
"""

from __future__ import annotations

from typing import Annotated, Any, Union, get_args

from pydantic import BaseModel, Discriminator, Field, Tag


class PluginConfigs:
    def __init__(self, kind: str, default: str | None = None):
        """`default`: the type of a section that names none (else `type` is required)."""
        self.kind, self.default = kind, default
        self._models: dict[str, type[BaseModel]] = {}
        self._built = False

    def add(self, type_name: str):
        def deco(model: type[BaseModel]) -> type[BaseModel]:
            if self._built:
                raise RuntimeError(f"{self.kind} config {type_name!r} added after its union was built")
            if type_name in self._models:
                raise ValueError(f"{self.kind} config type {type_name!r} is added twice")
            if get_args(model.model_fields["type"].annotation) != (type_name,):
                raise ValueError(f"{model.__name__}.type must be Literal[{type_name!r}]")
            self._models[type_name] = model
            return model
        return deco

    def names(self) -> list[str]:
        return sorted(self._models)

    def model(self, type_name: str) -> type[BaseModel]:
        return self._models[type_name]

    def union(self) -> Any:
        self._built = True
        if self.default is None:
            return Annotated[Union[tuple(self._models.values())], Field(discriminator="type")]
        default = self.default

        def tag(v):
            return v.get("type", default) if isinstance(v, dict) else getattr(v, "type", default)

        return Annotated[Union[tuple(Annotated[m, Tag(t)] for t, m in self._models.items())],
                         Discriminator(tag)]
