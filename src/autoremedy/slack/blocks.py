"""The approval message's vocabulary: the buttons' action ids, which the channel posts and chatops answers, and
the message as it reads once someone decided."""

from __future__ import annotations

from typing import Any, Final

from autoremedy.decide.text import ellipsize

APPROVE_ACTION: Final = "autoremedy_approve"
DENY_ACTION: Final = "autoremedy_deny"
APPROVAL_BLOCK_ID: Final = "autoremedy_approval"
CONTEXT_MAX: Final = 3000

Block = dict[str, Any]


def context_block(*texts: str) -> Block:
    """A context block of mrkdwn texts (Slack takes at most 10 elements)."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text} for text in texts[:10]]}


def decided_blocks(blocks: list[Block], said: str) -> list[Block]:
    """The approval message with its buttons replaced by what was decided; `said` is mrkdwn the caller escaped
    (e.g. `Approved by <@U1> at ...`)."""
    kept = [block for block in blocks if block.get("block_id") != APPROVAL_BLOCK_ID and block.get("type") != "actions"]
    return [*kept, context_block(ellipsize(said, CONTEXT_MAX))]
