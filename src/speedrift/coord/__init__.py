"""Coordination: typed shared state that agents, roles, speedrift and humans write through.

records (the vocabulary, pure), store (one append-only store per scope, one writer lock, gapless
sequence numbers). Above the graph and beside the repo plane: it imports only the foundation, so
the worker plane (fleet) compiles inboxes from it and plans build waves on it.
"""
