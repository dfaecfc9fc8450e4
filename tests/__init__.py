"""Tests for stepstone. A package so that the test substrate (`tests.substrate`) is importable."""
