"""Use cases: what eddymail does, independent of how it is asked (CLI) or stored.

Services take plain values, return plain dataclasses (never live ORM rows, so tables and
``--json`` render the same values) and raise ``eddymail.errors`` exceptions.
"""
