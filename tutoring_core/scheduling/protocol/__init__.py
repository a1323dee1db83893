"""Scheduling rules that need no Django: the slot engine (slots.py)."""
