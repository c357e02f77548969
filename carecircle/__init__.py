"""carecircle: elderly-care service coverage (15分钟养老服务圈) for Chinese cities.

The stages live in ``carecircle.layers`` (inputs), ``carecircle.coverage`` (analysis) and
``carecircle.maps`` (outputs); ``carecircle.pipeline`` wires them and ``carecircle.cli`` is
the command line.
"""

__version__ = "0.1.0"
