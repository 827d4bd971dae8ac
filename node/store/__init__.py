"""The store: one SQLite file (schema, migrations), the ledger that appends and ingests
signed entries, the async single writer, and the run lock.

Imports only `protocol` and `node.config`. What is folded from entries is handed in by
the state layer (ledger.Fold), so nothing here knows listings or claims.
"""
