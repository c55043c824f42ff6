"""In-process consensus networks for the glue tests (``consensus_net``).

This folder's conftest puts the folder on ``sys.path`` (pytest's rootless
prepend mode), so the tests import the helper as ``from consensus_net import``.
"""
