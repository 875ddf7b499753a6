"""Reading an Elasticsearch index by id: chunk texts, membership, every id, a document's
chunks. Lookups go ``LOOKUP_BATCH`` ids a request; listings page with ``search_after``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from auditor.backends.es_connection import Connection, error_reason
from auditor.backends.es_query import Layout, id_sort
from auditor.records import Level

log = logging.getLogger(__name__)

LOOKUP_BATCH = 1000


def first_value(hit: dict[str, Any], field: str) -> str | None:
    """The first value of a requested ``fields`` entry of a hit."""
    values = hit.get("fields", {}).get(field)
    return str(values[0]) if values else None


def _dotted(source: dict[str, Any], path: str) -> Any:
    if path in source:
        return source[path]
    value: Any = source
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def fetch(conn: Connection, layout: Layout, chunk_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """Texts by chunk id: ``{chunk_id: {"doc_id", "title", "text"}}``; unknown ids absent."""
    chunk, doc, title, text = (layout.fields[r] for r in ("chunk_id", "doc_id", "title", "text"))
    wanted = list(dict.fromkeys(chunk_ids))
    found: dict[str, dict[str, str]] = {}
    for start in range(0, len(wanted), LOOKUP_BATCH):
        batch = wanted[start:start + LOOKUP_BATCH]
        body = conn.search({"query": {"terms": {chunk: batch}}, "size": len(batch),
                            "fields": [chunk, doc], "_source": [title, text]}, "fetching chunks")
        for hit in body["hits"]["hits"]:
            source = hit.get("_source", {})
            found[first_value(hit, chunk) or hit["_id"]] = {
                "doc_id": first_value(hit, doc) or "",
                "title": str(_dotted(source, title) or ""),
                "text": str(_dotted(source, text) or ""),
            }
    return found


def contains(conn: Connection, layout: Layout, ids: Sequence[str], level: Level) -> list[bool]:
    """Membership of each id (document or chunk ids), by a terms aggregation."""
    field = layout.fields["doc_id" if level == "doc" else "chunk_id"]
    wanted = list(dict.fromkeys(ids))
    present: set[str] = set()
    for start in range(0, len(wanted), LOOKUP_BATCH):
        batch = wanted[start:start + LOOKUP_BATCH]
        aggs = {"present": {"terms": {"field": field, "size": len(batch), "include": batch}}}
        body = conn.search({"size": 0, "query": {"terms": {field: batch}}, "aggs": aggs},
                           "looking ids up")
        present.update(bucket["key"] for bucket in body["aggregations"]["present"]["buckets"])
    return [item in present for item in ids]


def iter_ids(conn: Connection, layout: Layout) -> Iterator[tuple[str, str]]:
    """Every (chunk_id, doc_id) by chunk id, paged in a point in time when the node can."""
    from elasticsearch import ApiError

    client, index = conn.client, conn.index
    body: dict[str, Any] = {"size": LOOKUP_BATCH, "sort": id_sort(layout.fields)[1:],
                            "_source": False, "stored_fields": "_none_",
                            "track_total_hits": False}
    pit: str | None = None
    try:
        pit = conn.call(lambda: client.open_point_in_time(index=index, keep_alive="2m"),
                        "opening a point in time", passthrough=(400, 403, 405)).body["id"]
    except ApiError as exc:
        log.warning("no point in time on %s (%s): paging the live index, so writes during "
                    "the scan may be missed or seen twice", index, error_reason(exc.body))
    try:
        while True:
            if pit is not None:
                body["pit"] = {"id": pit, "keep_alive": "2m"}
                page = conn.call(lambda: client.search(**body), "listing ids").body
                pit = page.get("pit_id", pit)
            else:
                page = conn.search(body, "listing ids")
            hits = page["hits"]["hits"]
            for hit in hits:
                chunk_id, doc_id = hit["sort"][:2]  # a PIT adds a _shard_doc tiebreak
                if chunk_id is None:  # missing values sort last: nothing more to list
                    log.warning("index %s has chunks without %s: they are not listed",
                                index, layout.fields["chunk_id"])
                    return
                yield str(chunk_id), str(doc_id or "")
            if len(hits) < LOOKUP_BATCH:
                return
            chunk_id, doc_id, *tiebreak = hits[-1]["sort"]
            body["search_after"] = [chunk_id, doc_id or "", *tiebreak]  # ids are unique
    finally:
        if pit is not None:
            try:
                client.options(ignore_status=404).close_point_in_time(id=pit)
            except Exception:  # it expires by itself after keep_alive
                log.info("could not close point in time on %s", index)


def doc_chunks(conn: Connection, layout: Layout, doc_ids: Sequence[str]) -> dict[str, list[str]]:
    """Chunk ids by document: a terms query on the doc id field, sorted by doc id, then
    position (when the index maps a numeric ``position`` field; es_fields can name it),
    then chunk id, paged with ``search_after``. Unknown documents are absent."""
    doc, chunk = layout.fields["doc_id"], layout.fields["chunk_id"]
    sort: list[dict[str, str]] = [{doc: "asc"}, {chunk: "asc"}]
    if layout.position_field is not None:
        sort.insert(1, {layout.position_field: "asc"})
    wanted = list(dict.fromkeys(doc_ids))
    found: dict[str, list[str]] = {}
    for start in range(0, len(wanted), LOOKUP_BATCH):
        body: dict[str, Any] = {"query": {"terms": {doc: wanted[start:start + LOOKUP_BATCH]}},
                                "size": LOOKUP_BATCH, "sort": sort, "_source": False,
                                "stored_fields": "_none_", "track_total_hits": False}
        while True:
            hits = conn.search(body, "listing a document's chunks")["hits"]["hits"]
            for hit in hits:
                found.setdefault(str(hit["sort"][0]), []).append(str(hit["sort"][-1]))
            if len(hits) < LOOKUP_BATCH:
                break
            body["search_after"] = hits[-1]["sort"]
    return found
