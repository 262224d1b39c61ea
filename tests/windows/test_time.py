from __future__ import annotations

import pytest

from eventml.windows import StreamTime, Window, is_closed


def test_stream_time_is_the_max_event_time_seen() -> None:
    st = StreamTime()
    assert st.value_ms is None
    assert [st.observe(t) for t in (5, 3, 9, 1, 9, 10)] == [5, 5, 9, 9, 9, 10]
    assert st.value_ms == 10


@pytest.mark.parametrize(
    ("window", "grace", "stream_time", "closed"),
    [
        # [0, 100): closes at end + grace
        (Window(0, 100), 0, None, False),
        (Window(0, 100), 0, 99, False),
        (Window(0, 100), 0, 100, True),
        (Window(0, 100), 20, 119, False),
        (Window(0, 100), 20, 120, True),
        # [0, 100] (session, sliding): the first ms after it is 101
        (Window(0, 100, end_inclusive=True), 0, 100, False),
        (Window(0, 100, end_inclusive=True), 0, 101, True),
        (Window(0, 100, end_inclusive=True), 20, 120, False),
        (Window(0, 100, end_inclusive=True), 20, 121, True),
    ],
)
def test_window_close(window: Window, grace: int, stream_time: int | None, closed: bool) -> None:
    assert is_closed(window, stream_time, grace) is closed
