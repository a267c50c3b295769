"""One task, driven against the server: a conversation of model calls with one verdict.

`run_task` sends the item's prompt, then, by the task's kind:

- `retry`: a wrong answer is told so (`FEEDBACK` as the next user turn) and asked again, until
  an answer is correct, a call fails, or `max_turns` calls were made; solved if any turn is
  correct (the last one, since a correct answer ends the task);
- `tools`: the model is offered the tools of `tasks._tools`; each tool call it makes is run by the
  harness (never by the model's text: a safe evaluator) and its result sent back as a `tool`
  message, until the model answers without calling a tool (that answer is scored) or
  `max_turns` calls were made (the task failed: out of turns);
- `replay`: the item's later conversation turns (`Item.follow_ups`) are sent one by one after the
  model's own answer to the one before, each judged against its own reference; the task's verdict
  is the last turn's.

Every call is returned with the tools it ran and their wall times; the runner makes one request
row per call and the task row from them (`tasks._build`), so nothing here touches energy.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from perwatt.endpoints.client import ChatMessage, Completion, Prompt, StreamingClient, ToolCall
from perwatt.errors import PerwattError
from perwatt.records import Item, Score, TaskKind, ToolRun
from perwatt.tasks import _tools
from perwatt.workloads.common import ANSWER_FORMAT

# The next user turn after a wrong answer (the wording; the reference set-ups use the
# same plain sentence so that a model is told nothing but that it was wrong).
FEEDBACK = "That is not correct; try again."

Scorer = Callable[[Item, Completion], Awaitable[Score]]
# The verdict of a call that asked for tools instead of answering: there is no answer to score.
UNANSWERED = Score(answer=None, correct=None, score=None)


@dataclass(frozen=True)
class TaskCall:
    """One model call of a task: what was sent, what came back, its verdict (None for a call
    that asked for tools instead of answering), and the tools the harness ran for it."""

    prompt: Prompt
    completion: Completion
    score: Score | None
    # The turn the call answered, when it is not the item's first (a replayed conversation's
    # later turn: its question and the reply it is judged against).
    turn: Item | None = None
    tool_runs: tuple[ToolRun, ...] = ()


async def run_task(
    client: StreamingClient,
    item: Item,
    prompt: Prompt,
    kind: TaskKind,
    *,
    max_turns: int,
    score: Scorer,
    clock: Callable[[], float],
) -> list[TaskCall]:
    """Every call of the task, in order (at least one). Never raises for what a server or a
    model does: a failed call ends the task, and is the last call returned."""
    if kind == "replay":
        return await _replay(client, item, prompt, max_turns=max_turns, score=score)
    calls: list[TaskCall] = []
    for _ in range(max_turns):
        completion = await client.complete(prompt)
        if completion.status in ("error", "timeout"):
            calls.append(TaskCall(prompt, completion, await score(item, completion)))
            break
        if kind == "tools" and completion.tool_calls:
            runs = tuple(_run_tool(call, clock) for call in completion.tool_calls)
            calls.append(TaskCall(prompt, completion, None, tool_runs=runs))
            prompt = with_tool_results(prompt, completion, runs)
            continue
        scored = await score(item, completion)
        calls.append(TaskCall(prompt, completion, scored))
        if kind != "retry" or scored.correct is not False:
            break  # solved, or answered (tools), or unscored: nothing to tell the model
        prompt = with_feedback(prompt, completion.text)
    return calls


async def _replay(
    client: StreamingClient, item: Item, prompt: Prompt, *, max_turns: int, score: Scorer
) -> list[TaskCall]:
    # Each turn is asked after the model's own answer to the one before (never the recorded
    # one: what is measured is this model's conversation) and judged against its own reply;
    # the task's verdict is the last turn's. --max-turns caps a long conversation.
    turns = [item, *(dataclasses.replace(item, question=f.question, reference=f.answer)
                     for f in item.follow_ups)][:max_turns]  # fmt: skip
    calls: list[TaskCall] = []
    for k, turn in enumerate(turns):
        completion = await client.complete(prompt)
        calls.append(TaskCall(prompt, completion, await score(turn, completion), turn))
        if completion.status in ("error", "timeout") or k + 1 == len(turns):
            break
        prompt = with_user_turn(prompt, completion.text, turns[k + 1].question)
    return calls


def _run_tool(call: Any, clock: Callable[[], float]) -> ToolRun:
    t_start = clock()
    result = _tools.execute(call.name, call.arguments_json)
    t_end = clock()
    return ToolRun(
        call_id=call.id,
        name=call.name,
        arguments=call.arguments_json,
        ok=result.ok,
        result=result.content,
        error=result.error,
        t_start=t_start,
        t_end=t_end,
    )


# A tool run's first turn: a system line and three solved calculator exchanges (call, result,
# reply) before the question, each asked in the item's own form (its closing instruction, the
# workload's answer format) and answered as that form asks. Without shots SmolLM2-135M answers
# in text and never calls a tool; with shots asked otherwise ("What is 2 + 3?") it answered all
# six reasoning-gym items in text; with these it called the calculator on all six.
TOOLS_SYSTEM = "You answer arithmetic questions by calling the calculator tool."
TOOL_SHOTS: tuple[tuple[str, str], ...] = (("2 + 3", "5"), ("4 * 6", "24"), ("10 - 7", "3"))


def check_kind(kind: TaskKind, api: str) -> None:
    """A clear error when a task of `kind` cannot be asked through `api`."""
    if kind in ("tools", "replay") and api != "chat":
        raise PerwattError(f"--task {kind} needs a chat model (its turns are chat messages); "
                           "a model prompted few-shot cannot hold a conversation")  # fmt: skip


def task_prompt(prompt: Prompt, kind: TaskKind) -> Prompt:
    """The first turn of a task of `kind` for the item's plain `prompt`: for tools, the shots
    above and every tool of `tasks._tools` in the request's `tools` field; otherwise `prompt`."""
    check_kind(kind, prompt.api)
    if kind != "tools":
        return prompt
    asked = prompt.messages[-1].content if prompt.messages else ""
    instruction = asked.rsplit("\n\n", 1)[1] if "\n\n" in asked else ANSWER_FORMAT
    shots: list[ChatMessage] = [ChatMessage(role="system", content=TOOLS_SYSTEM)]
    for k, (question, answer) in enumerate(TOOL_SHOTS):
        call = ToolCall(f"call_{k}", "calculator", json.dumps({"expression": question}))
        shots += [
            ChatMessage(role="user", content=f"Calculate {question}.\n\n{instruction}"),
            ChatMessage(role="assistant", content="", tool_calls=(call,)),
            ChatMessage(role="tool", content=answer, tool_call_id=call.id),
            ChatMessage(role="assistant", content=f"Answer: {answer}"),
        ]
    return Prompt(api="chat", messages=(*shots, *prompt.messages),
                  tools=tuple(_tools.tool_specs()))  # fmt: skip


def with_user_turn(prompt: Prompt, answer: str, question: str) -> Prompt:
    """The chat prompt of the next turn: the model's `answer`, then the user's `question`."""
    turns = (ChatMessage(role="assistant", content=answer),
             ChatMessage(role="user", content=question))  # fmt: skip
    return Prompt(api="chat", messages=prompt.messages + turns, tools=prompt.tools)


def with_feedback(prompt: Prompt, answer: str) -> Prompt:
    """The prompt of the next turn after a wrong `answer`: the answer, then `FEEDBACK`."""
    if prompt.api == "chat":
        return with_user_turn(prompt, answer, FEEDBACK)
    # A few-shot completion prompt ends in "Answer:"; the feedback asks for the next one.
    text = f"{prompt.text} {answer.strip()}\n{FEEDBACK}\nAnswer:"
    return Prompt(api="completions", text=text, stop=prompt.stop)


def with_tool_results(prompt: Prompt, completion: Completion, runs: tuple[ToolRun, ...]) -> Prompt:
    """The prompt of the next turn: the model's tool calls, then one `tool` message each."""
    asked = ChatMessage(
        role="assistant",
        content=completion.text,
        tool_calls=tuple(
            {"id": run.call_id, "type": "function",
             "function": {"name": run.name, "arguments": run.arguments}}
            for run in runs
        ),
    )  # fmt: skip
    answers = tuple(
        ChatMessage(role="tool", content=run.result, tool_call_id=run.call_id) for run in runs
    )
    return Prompt(api="chat", messages=(*prompt.messages, asked, *answers), tools=prompt.tools)


def tool_runs_json(runs: tuple[ToolRun, ...]) -> str | None:
    """A call's tool runs as the `tool_calls` column holds them (None when it ran none)."""
    if not runs:
        return None
    return json.dumps([run.__dict__ for run in runs], separators=(",", ":"))
