"""Workflows the tests run, in-process and in subprocesses and pods (importable as
``tests.workflows.<module>:<function>`` from the repository root).

Side effects are counted in Postgres, outside stepstone's tables (``test_effects``), so a test
can prove how many times each step's body really ran, whatever was killed when.
"""
