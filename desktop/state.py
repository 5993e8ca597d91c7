"""One GUI state, Qt-free: the frame on screen, the selected face track and the review shown.

The player, the timeline and the panels observe it (SLEAP's GuiState, napari's Dims): each
writes what it owns (the player the frame it painted, the timeline the track chosen, the main
window the review) and is told what the others change, so nothing is pushed by hand between
widgets. Observers are called only on a change, so a widget may write back what it was told.

A frame *request* (a click on the timeline, a segment or bookmark chosen) is an event, not state:
the player seeks and `frame` follows once the frame is painted (the loader serves only the newest
request, so the frame shown may skip requests).

`fence` keeps a slow piece of work from overwriting newer work on screen (Orange3's
ConcurrentMixin semantics): each start of a kind of work takes a new ticket, and only the holder
of the latest ticket may show its result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FIELDS = ("frame", "track_id", "review")


class Fence:
    """Tickets per kind of work ("view"): the latest one taken is the only current one."""

    def __init__(self) -> None:
        self._latest: dict[str, int] = {}

    def take(self, kind: str) -> int:
        self._latest[kind] = self._latest.get(kind, 0) + 1
        return self._latest[kind]

    def current(self, kind: str, ticket: int) -> bool:
        return self._latest.get(kind) == ticket


class GuiState:
    def __init__(self) -> None:
        self._values: dict[str, Any] = {"frame": 0, "track_id": None, "review": None}
        self._observers: dict[str, list[Callable[[Any], None]]] = {k: [] for k in FIELDS}
        self._seekers: list[Callable[[int], None]] = []
        self.fence = Fence()

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    @property
    def frame(self) -> int:
        return int(self._values["frame"])

    @property
    def track_id(self) -> int | None:
        return self._values["track_id"]

    @property
    def review(self) -> Any:
        return self._values["review"]

    def observe(self, key: str, fn: Callable[[Any], None]) -> None:
        """Call fn(new value) whenever `key` changes."""
        if key not in self._observers:
            raise KeyError(f"no GUI state {key!r} (known: {', '.join(FIELDS)})")
        self._observers[key].append(fn)

    def set(self, key: str, value: Any) -> bool:
        """Store and tell the observers; False (and no call) when the value is unchanged. A review
        is compared by identity: a new review object is news even if equal."""
        old = self._values[key]
        same = old is value if key == "review" else old == value
        if same:
            return False
        self._values[key] = value
        for fn in list(self._observers[key]):
            fn(value)
        return True

    def on_frame_request(self, fn: Callable[[int], None]) -> None:
        self._seekers.append(fn)

    def request_frame(self, frame: int) -> None:
        """Ask for a frame (the player seeks; `frame` changes when it is painted)."""
        for fn in list(self._seekers):
            fn(int(frame))
