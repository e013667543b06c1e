"""Activities: the generic node activity, and the event-source and stream activities."""

from activities.long_running import LongRunningActivities
from activities.node import NodeActivities

__all__ = ["LongRunningActivities", "NodeActivities"]
