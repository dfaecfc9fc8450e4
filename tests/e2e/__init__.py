"""The shipping suite: the image, the Helm chart and the docs' commands, end to end.

Run on kind where Docker exists (``make e2e``); the same scenarios (``scenarios.py``) run on the
local control plane against a chart-installed operator (tests/integration/test_chart_install.py).
"""
