"""Analyses that answer "why was the guest slow": each a Qt-free function from a Session to Arrow tables.

Every time is int64 ns on the host clock (the session's merged time).  The app's panels and
``kshark-py stats`` print the same tables.
"""
