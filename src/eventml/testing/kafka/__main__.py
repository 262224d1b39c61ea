"""``python -m eventml.testing.kafka start|stop|status|jars``."""

from eventml.testing.kafka.cli import main

raise SystemExit(main())
