"""Flow metrics of the factory (``speedrift metrics``, the dashboard's ``/metrics`` page): what landed
and when, how long work waited, how often attempts and merges succeeded, which gates failed, which
failure classes occurred, how fast people answered, and what a landed change cost.

``compute`` is pure (plain records and ``now`` in, every number with its formula and inputs out);
``collect`` reads the records from the repos' ``.speedrift/`` and task graphs.
"""
