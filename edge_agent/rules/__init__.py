"""Zone rules: tracks in, ProblemUpdates out. One rule type per module, shared machinery in base.py."""

from edge_agent.rules.config import RuleConfig, RuleSchedule
from edge_agent.rules.engine import RuleEngine, check_rules_against_zones

__all__ = ["RuleConfig", "RuleEngine", "RuleSchedule", "check_rules_against_zones"]
