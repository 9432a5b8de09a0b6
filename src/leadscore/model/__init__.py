"""The one scoring artifact and its parts.

Imports nothing from training or reporting: scoring a batch never loads the training stack.
"""
