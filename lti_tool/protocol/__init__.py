"""LTI 1.3 protocol code that needs no Django: role vocabularies, claim parsing, presets."""
