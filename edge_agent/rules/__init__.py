"""Zone rules: tracks in, ProblemUpdates out. One rule type per module, shared machinery in base.py."""

from edge_agent.rules.config import RuleConfig, RuleSchedule

__all__ = ["RuleConfig", "RuleSchedule"]
