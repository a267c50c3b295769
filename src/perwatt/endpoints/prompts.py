"""How a workload item becomes a request for a given model.

An instruction-tuned model gets the question as a chat turn (the server applies the GGUF's chat
template). A base model gets a few-shot completion prompt: solved examples of the same task, then
the question, ending in "Answer:" so that its continuation is the answer.
"""

from __future__ import annotations

from perwatt.endpoints.catalogue import PromptStyle
from perwatt.endpoints.client import ChatMessage, Prompt
from perwatt.records import Item

FEWSHOT_STOP: tuple[str, ...] = ("\nQuestion:", "\n\n")


def build_prompt(item: Item, style: PromptStyle) -> Prompt:
    """The request to send for `item` to a model prompted in `style`."""
    if style == "chat":
        return Prompt(api="chat", messages=(ChatMessage(role="user", content=item.question),))
    shots = "".join(f"Question: {ex.question}\nAnswer: {ex.answer}\n\n" for ex in item.examples)
    return Prompt(
        api="completions", text=f"{shots}Question: {item.question}\nAnswer:", stop=FEWSHOT_STOP
    )


# Warm-up requests use a prompt that is in no workload: warming up with the workload's first item
# would put that item in the server's prompt cache, and its measured request would then skip
# most of its prefill (found with an independent proxy: 69 of 70 prompt tokens cached).
WARMUP_QUESTION = "Warm-up request, not part of any workload. Reply with the single word: ready."


def warmup_prompt(style: PromptStyle, k: int = 0) -> Prompt:
    """The k-th warm-up request for a model prompted in `style` (distinct per k, so that two
    warm-ups do not share a cache entry either)."""
    question = f"{WARMUP_QUESTION} ({k + 1})"
    if style == "chat":
        return Prompt(api="chat", messages=(ChatMessage(role="user", content=question),))
    return Prompt(api="completions", text=f"Question: {question}\nAnswer:", stop=FEWSHOT_STOP)
