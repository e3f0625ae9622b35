"""Shared base of the rule types. RuleConfig lives in `config.py` and is re-exported here."""

from __future__ import annotations

from edge_agent.rules.config import RuleClock, RuleConfig, RuleSchedule

__all__ = ["RuleClock", "RuleConfig", "RuleSchedule"]
