"""Activities: the generic node activity, the event-source and stream activities, and the
registry read of long-running executions."""

from activities.admission import AdmissionActivities
from activities.long_running import LongRunningActivities
from activities.node import NodeActivities
from activities.registry import RegistryActivities

__all__ = ["AdmissionActivities", "LongRunningActivities", "NodeActivities", "RegistryActivities"]
