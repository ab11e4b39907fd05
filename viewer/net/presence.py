"""What a waiting share or bridge says: within a few seconds, that no Zenoh peer was reached
(or connected), or that a bridge has reached one but nothing there matches what it mirrors;
and again whenever that changes. A wait that can last always says what it waits for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

NOTICE_AFTER_S = 3.0  # long enough for a peer on loopback or a LAN to answer; short for a person

Report = Callable[[str], None]


def peer_count(session: Any) -> int:
    """Zenoh peers and routers this session has a link with now."""
    info = session.info
    return len(list(info.peers_zid())) + len(list(info.routers_zid()))


class PeerNotice:
    """Polled by a command's main loop (check()); reports through ``report``.

    ``idle`` says what is missing once peers are reached (a bridge: no matching stream),
    or None when nothing is."""

    def __init__(
        self,
        session: Any,
        command: str,
        report: Report,
        *,
        listen: Sequence[str] = (),
        connect: Sequence[str] = (),
        idle: Callable[[], str | None] = lambda: None,
        after_s: float = NOTICE_AFTER_S,
    ) -> None:
        self.session, self.command, self.report, self.idle = session, command, report, idle
        self.listen, self.connect = list(listen), list(connect)
        self._due = time.monotonic() + after_s
        self._after_s = after_s
        self._reached: bool | None = None  # what was last said: None before anything
        self._idle_said: str | None = None

    def check(self) -> None:
        if time.monotonic() < self._due:
            return
        reached = peer_count(self.session) > 0
        if reached != self._reached:
            self._say_peers(reached)
        idle = self.idle() if reached else None
        if idle != self._idle_said and idle is not None:
            self.report(f"{self.command}: {idle}")
        self._idle_said = idle

    def _say_peers(self, reached: bool) -> None:
        first, self._reached = self._reached is None, reached
        if reached:
            if not first:
                self.report(f"{self.command}: a Zenoh peer is reached again")
            return
        if not first:
            self.report(f"{self.command}: no Zenoh peer reached any more; still trying")
        elif self.connect:
            self.report(
                f"{self.command}: no Zenoh peer or router reached at {', '.join(self.connect)} after "
                f"{self._after_s:g} s (is shmview share, bridge or zenohd running there?); still trying"
            )
        else:
            where = ", ".join(self.listen) or "the endpoints of the Zenoh config"
            self.report(f"{self.command}: no peer has connected on {where} after {self._after_s:g} s; waiting")
