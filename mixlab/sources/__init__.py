"""Readers/adapters per source family -> datatrove Documents, with explicit accounting of bad input.

Modules (import the one you need; importing this package imports no reader and no datatrove):
``slimpajama`` (JSONL / jsonl.zst text, also the generic JSONL reader), ``stack`` (The Stack parquet, code and
markup), ``notebooks`` (.ipynb), ``commits`` (CommitPack -> message + diff), ``stackexchange`` (Posts.xml), ``issues``
(GitHub issue threads).
Shared machinery (accounting, input listing, robust line streams, control characters): ``base``.
"""
