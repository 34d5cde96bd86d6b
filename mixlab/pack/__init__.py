"""Packing: token shard sets per source -> a sharded, memory-mapped phase at exact proportions.

See ``apportion`` (how many sequences each source gets), ``interleave`` / ``order`` (in which order, whole or
streamed), ``blockorder`` / ``ledger`` / ``source`` (which tokens), ``plan`` (the layout before any I/O),
``writer`` (shard tasks + manifest), ``dataset`` (the torch side) and ``export`` (other trainers' formats).
"""
