"""LTI Advantage service shapes (AGS 2.0, NRPS 2.0) with no Django: payloads, media
types, Link-header paging and retry rules. Tested without a database."""
