"""Agent runtimes: claude, codex, opencode and shell behind one protocol (`protocol.py`).

`registry` picks a runtime for a task, `env` builds the agent's scrubbed environment, `session`
runs one attempt under budgets, and `result` reads the agent's optional report.
"""
