"""``shmview list --remote``: the streams shared on Zenoh, from their liveliness tokens,
with what each sharer says of it (shape, codec, rate)."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from viewer.errors import NetError
from viewer.net.config import KEY_ROOT, split_key

log = logging.getLogger(__name__)


def remote_rows(session: Any, timeout: float = 2.0, pattern: str = f"{KEY_ROOT}/**") -> list[dict[str, Any]]:
    """One dict per live remote stream: host, name, key, shape, codec, fps, sent.
    NetError when no peer or router could be reached: "no streams" would be a lie."""
    info = session.info
    if not (list(info.peers_zid()) or list(info.routers_zid())):
        raise NetError("no Zenoh peer or router reached (is share or zenohd running there?)")
    keys = sorted({str(r.ok.key_expr) for r in session.liveliness().get(pattern, timeout=timeout) if r.ok})
    infos = _infos(session, pattern, timeout)
    rows = []
    for key in keys:
        parts = split_key(key)
        if parts is None:
            continue
        info = infos.get(key, {})
        rows.append(
            {
                "host": parts[0],
                "name": parts[1],
                "key": key,
                "shape": info.get("shape"),
                "codec": info.get("codec"),
                "fps": info.get("fps"),
                "sent": info.get("sent"),
            }
        )
    return rows


def _infos(session: Any, pattern: str, timeout: float) -> dict[str, dict[str, Any]]:
    found = {}
    for reply in session.get(pattern, timeout=timeout):
        if reply.ok is None:
            continue
        try:
            info = orjson.loads(reply.ok.payload.to_bytes())
        except orjson.JSONDecodeError:
            continue
        if isinstance(info, dict):
            found[str(reply.ok.key_expr)] = info
    return found
