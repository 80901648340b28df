"""What the OpenAPI document says of the upload routes beyond their signatures: the
multipart / raw body, the query parameters, the problem answers."""

from __future__ import annotations

from service.schemas import Problem


def problems(*codes: int) -> dict[int | str, dict[str, object]]:
    return {code: {"model": Problem, "content": {"application/problem+json": {}}}
            for code in codes}


PROBLEMS = problems(400, 401, 413, 415, 422, 429, 503, 504)
# a session that does not exist (404); a second clip of one session in flight (409)
SESSION_PROBLEMS = problems(400, 401, 404, 409, 413, 415, 422, 429, 503, 504)

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["video"], "properties": {
            "video": {"type": "string", "format": "binary"},
            "boxes": {"type": "string", "description": "JSON person boxes per key frame"},
            "min_score": {"type": "number"}, "top_k": {"type": "integer"},
            "labels": {"type": "string"}, "format": {"type": "string"},
            "clip_index": {"type": "integer"}, "start_s": {"type": "number"}}}},
        "video/*": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


def _query(name: str, kind: str, text: str) -> dict[str, object]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind},
            "description": text}


DETECT_QUERY = [
    _query("boxes", "string", 'person boxes per key frame, JSON: [{"timestamp": 1.0, '
           '"boxes": [[x1, y1, x2, y2], ...]}], coordinates normalised to [0,1]; their '
           "timestamps are the key frames (seconds from the start of the upload)"),
    _query("min_score", "number", "drop actions scoring below this (default 0.1)"),
    _query("top_k", "integer", "at most this many actions per person (default 5)"),
    _query("labels", "string", "comma-separated allow-list of action ids or names"),
    _query("format", "string", "json (default) or ava_csv"),
]
CLIP_QUERY = [
    _query("clip_index", "integer", "required: 0, 1, 2, ... in the session's order"),
    _query("start_s", "number", "start of the clip in session seconds (default clip_index x "
           "this clip's duration)"),
    *DETECT_QUERY,
]
