"""Contracts shared by the fn-vision functions and triggers: one definition each (docs/contracts.md §1)."""
