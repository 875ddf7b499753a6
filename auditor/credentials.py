"""Credentials inside URLs: taken out before a URL is printed, stored or quoted.

Why a module of its own: the settings split ``user:password@`` out of ``es_url``, the
Elasticsearch connection scrubs messages, and a store migration scrubs old runs; all three
must agree on what a credential in a URL looks like.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")


def display_url(url: str) -> str:
    """The URL without ``user:password@``, fit for messages."""
    return split_userinfo(url)[1]


def split_userinfo(url: str) -> tuple[str | None, str]:
    """(``user:password`` or None, the URL without it). Textual, so a URL with a bad port
    is scrubbed too before any message quotes it."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return None, url
    return userinfo, parts._replace(netloc=host).geturl()


def scrub_urls(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it removed."""
    return USERINFO.sub(r"\1", text)
