"""The web console at /ui/: runs as timelines, "why didn't it act?", approvals and guardrails.

Server-rendered (jinja2, autoescaped), one CSS file, a few lines of plain JavaScript for Server-Sent Events; no
external network. Sign-in takes the same credentials as the API (read scope or more) and keeps a session in the
store; every state-changing request checks the session's CSRF token and the Origin header. Approve, deny, pause,
resume and close go through the control service, like the API and chat.
"""

from __future__ import annotations

from autoremedy.console.app import install

__all__ = ["install"]
