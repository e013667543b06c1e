"""Example plugins: ``word_count`` (a typed, class-based plugin) and ``reverse_text`` (a
plain function with a configuration model)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from plugins import PluginBase, PluginContext, plugin


class WordCount(PluginBase):
    """Counts the words of the text in its ``text`` input (or of every string input)."""

    plugin_id = "word_count"
    input_ports = ("text",)
    output_ports = ("counts",)

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        lowercase: bool = True
        top: int = Field(3, ge=1, le=100)

    async def run(self, inputs: dict[str, Any], config: Any, ctx: PluginContext) -> dict[str, Any]:
        text = " ".join(str(v) for v in inputs.values() if isinstance(v, str))
        words = text.lower().split() if config.lowercase else text.split()
        counts: dict[str, int] = {}
        for word in words:
            counts[word] = counts.get(word, 0) + 1
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: config.top]
        ctx.logger.info("counted", words=len(words))
        return {"counts": dict(ranked), "words": len(words)}


class ReverseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = "text"


@plugin("reverse_text", config=ReverseConfig)
def reverse_text(
    inputs: dict[str, Any], config: dict[str, Any], ctx: PluginContext
) -> dict[str, Any]:
    """Reverses the string in input ``field``."""
    return {"text": str(inputs.get(config["field"], ""))[::-1]}


PLUGINS = [WordCount(), reverse_text]
