"""Attempts on other machines: the executor seam of the pipeline, and its Dask implementation.

``spec`` is the contract between the hub and a worker (what a job carries, what it brings back);
``job`` runs on a Dask worker; ``executor`` and ``ingest`` run on the hub; ``cluster`` starts and
describes a cluster. docs/scale-out.md is the user's guide.
"""
