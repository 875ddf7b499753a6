"""Retrieval auditor: replays logged RAG queries and explains retrieval failures."""

__version__ = "0.1.0"
