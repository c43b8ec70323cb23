"""The hub's records: the append-only decision ledger (JSONL) and the central register (SQLite).

See docs/register.md for the register's schema and the ledger's retention rule.
"""
