"""The ruleset: clinical knowledge loaded from `rules/` and validated."""

from interpret.ruleset.load import Ruleset, RulesetError, default_ruleset, load_ruleset

__all__ = ["Ruleset", "RulesetError", "default_ruleset", "load_ruleset"]
