"""Runnable scenarios: seeded generators and end-to-end use cases on the log.

Each scenario is a subpackage (``eventml.demos.fraud``) with pure cores (data
generator, features, model) and a thin I/O layer that reads and writes the log
through the :class:`eventml.log.Log` contract only, so it runs on every backend.
"""
