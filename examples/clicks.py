"""A small app for `eventml describe` / `eventml run`: per-user click counts per minute.

    eventml describe examples.clicks:app
    eventml run examples.clicks:app --workers 2
"""

from eventml.engine import App
from eventml.windows import Count, Tumbling

app = App("clicks-per-minute")
clicks = app.topic("clicks", partitions=4, key="user")
counts = app.topic("clicks-per-minute", partitions=4)
late = app.topic("clicks-late", partitions=4)

(app.stream(clicks)
    .filter(lambda click: click.get("user") is not None)
    .window(Tumbling(size_ms=60_000), grace_ms=10_000, emit="final", late_to=late)
    .aggregate(Count())
    .to(counts))
