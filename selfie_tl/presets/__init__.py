"""Named interpretation settings, stored as versioned JSON inside the package.

A preset fixes everything that decides what SelfIE says: the interpretation prompt, the
:class:`~selfie_tl.interpret.InterpretationConfig` fields (injection layer, scale, decoding
controls, ...) and optionally a trained :mod:`~selfie_tl.adapter` file shipped beside it.

* ``paper``: the published recipe (summary prompt, ``k=2``, greedy, no levers); what
  :func:`selfie_tl.interpret` does when no preset is given.
* ``best``: the settings chosen on the validation split of the known facts for the default
  model (see its ``chosen_by`` note and the README's evaluation section).

Example:
    >>> preset = get_preset("paper")
    >>> preset.config().k
    2
    >>> sorted(preset_names())[:2]
    ['best', 'paper']
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.prompts import InterpretationPrompt, prompt_from_spec

PRESET_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Preset:
    """A named set of interpretation settings.

    Attributes:
        name: the preset's name.
        prompt: how to build the interpretation prompt: ``None`` (the default prompt),
            ``{"chat": {"user_before": ..., "user_after": ..., "assistant_prefix": ...,
            "n_placeholders": ...}}`` or ``{"parts": [...]}``.
        settings: :class:`~selfie_tl.interpret.InterpretationConfig` fields.
        adapter: file name of an adapter shipped beside the preset, or ``None``.
        notes: free text: how it was chosen and what it measured.
    """

    name: str
    prompt: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    adapter: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def interpretation_prompt(self, tokenizer: Any) -> InterpretationPrompt:
        """The preset's interpretation prompt for ``tokenizer``."""
        return prompt_from_spec(tokenizer, self.prompt)

    def config(self, **overrides: Any):
        """An :class:`~selfie_tl.interpret.InterpretationConfig` with the preset's settings."""
        from selfie_tl.interpret import InterpretationConfig

        settings = {k: v for k, v in self.settings.items() if k != "adapter"}
        return InterpretationConfig.from_dict({**settings, **overrides})

    def adapter_path(self) -> str | None:
        """Path of the shipped adapter file, or ``None``."""
        if self.adapter is None:
            return None
        return str(resources.files(__name__).joinpath(self.adapter))


def preset_names() -> list[str]:
    """Names of the presets shipped with the package."""
    return sorted(p.name[: -len(".json")] for p in resources.files(__name__).iterdir() if p.name.endswith(".json"))


def get_preset(name: str | Preset) -> Preset:
    """Load a shipped preset by name.

    Raises:
        InvalidArgumentError: unknown name or a file of another format version.
    """
    if isinstance(name, Preset):
        return name
    names = preset_names()
    if not isinstance(name, str) or name not in names:
        raise InvalidArgumentError(f"unknown preset {name!r}; choose from {names}")
    data = json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8"))
    if data.get("format_version") != PRESET_FORMAT_VERSION:
        raise InvalidArgumentError(
            f"preset {name!r} has format version {data.get('format_version')}, expected {PRESET_FORMAT_VERSION}"
        )
    return Preset(
        name=name, prompt=data.get("prompt"), settings=dict(data.get("settings") or {}),
        adapter=data.get("adapter"), notes=dict(data.get("notes") or {}),
    )  # fmt: skip


__all__ = ["PRESET_FORMAT_VERSION", "Preset", "get_preset", "preset_names"]
