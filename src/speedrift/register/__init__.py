"""The hub's records: the append-only decision ledger (JSONL) and the central register (SQLite or
PostgreSQL; register/store.py).

See docs/register.md for the register's schema, its backends and the ledger's retention rule.
"""
