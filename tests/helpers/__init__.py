"""Helpers shared by several test files: synthetic inputs, CLI runs and result readers.

Imported as ``from helpers.<module> import ...`` (pytest puts ``tests/`` on
``sys.path``); test files import these, never each other.
"""
