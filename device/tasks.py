"""The assistant's tasks, by one name each: results, adapters, prompts and the CLI all key on these."""

from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    NOTIFY = "notify"
    CATCH_UP = "catch_up"
    DRAFT_REPLIES = "draft_replies"
    POLISH = "polish"
    ASK = "ask"
    VERIFY = "verify"
    COMMANDS = "commands"


# the tasks a LoRA adapter can be trained and registered for (glassmate adapters build)
ADAPTER_TASKS: tuple[Task, ...] = (Task.CATCH_UP, Task.DRAFT_REPLIES)
