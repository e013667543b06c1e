"""Activities: the generic node activity that runs plugins."""

from activities.node import NodeActivities

__all__ = ["NodeActivities"]
