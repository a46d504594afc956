"""Playbooks: which customer-success plays an account needs now, from a small safe rule language.

Used by the service for one account at request time and by ``csa score`` for every account.

A play's ``when`` is parsed with Python's own parser and then checked node by node against a
short list (comparisons, and / or / not, names, ``churn.probability``-style score fields,
constants and lists of constants). Anything else, a call, an attribute of a feature, arithmetic,
is refused when the playbook loads, so evaluating a rule only ever compares values. Messages are
``string.Template`` texts, which substitute names and nothing more.
"""

from __future__ import annotations

import ast
import operator
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from csa.errors import ConfigError
from csa.features.definitions import feature_descriptions
from csa.settings import Settings

SCORE_FIELDS = {"churn": ("probability", "band"), "expansion": ("probability", "band")}

_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


@dataclass(frozen=True)
class Play:
    """One play: when it applies, who owns it, what to say."""

    id: str
    title: str
    when: str
    priority: int
    owner: str
    message: str
    rule: ast.Expression

    def applies(self, values: Mapping[str, Any]) -> bool:
        return bool(_evaluate(self.rule.body, values))

    def action(self, values: Mapping[str, Any]) -> dict[str, Any]:
        flat = {k.replace(".", "_"): _shown(v) for k, v in values.items()}
        return {
            "play": self.id,
            "title": self.title,
            "priority": self.priority,
            "owner": self.owner,
            "message": string.Template(self.message).safe_substitute(flat),
        }


def load_playbook(path: Path) -> list[Play]:
    """Every play of ``configs/playbooks.yaml``, rules checked.

    Raises:
        ConfigError: the file is malformed, or a rule uses something the language lacks or a
            name that is neither a feature nor a score.
    """
    try:
        entries = (yaml.safe_load(path.read_text()) or {})["plays"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a playbook ({exc}); it needs a 'plays' list.") from exc
    known = set(feature_descriptions())
    plays, seen = [], set()
    for entry in entries:
        try:
            play_id = str(entry["id"])
            rule = parse_rule(str(entry["when"]), known)
            play = Play(
                id=play_id,
                title=str(entry["title"]),
                when=str(entry["when"]),
                priority=int(entry.get("priority", 3)),
                owner=str(entry.get("owner", "csm")),
                message=str(entry.get("message", "")),
                rule=rule,
            )
        except (KeyError, TypeError, ValueError) as exc:
            where = entry.get("id", "?") if isinstance(entry, dict) else "?"
            raise ConfigError(
                f"{path}: play {where!r} is invalid ({exc}); each play needs id, title and a "
                "'when' rule (see the comment at the top of the file)."
            ) from exc
        if play_id in seen:
            raise ConfigError(f"{path}: play id {play_id!r} is used twice; ids must be unique.")
        seen.add(play_id)
        plays.append(play)
    return sorted(plays, key=lambda p: (p.priority, p.id))


def parse_rule(text: str, features: set[str]) -> ast.Expression:
    """A rule as a checked syntax tree.

    Raises:
        ValueError: the rule is not valid, or uses a construct or name outside the language.
    """
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"rule {text!r} does not parse: {exc.msg}") from exc
    for node in ast.walk(tree):
        _check_node(node, features, text)
    return tree


_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.Compare,
    ast.Name,
    ast.Attribute,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Load,
    *_COMPARISONS,
)


def _check_node(node: ast.AST, features: set[str], text: str) -> None:
    if not isinstance(node, _ALLOWED):
        raise ValueError(f"rule {text!r} uses {type(node).__name__}, which rules do not allow")
    if isinstance(node, ast.Attribute):
        owner = node.value
        if not (
            isinstance(owner, ast.Name)
            and owner.id in SCORE_FIELDS
            and node.attr in SCORE_FIELDS[owner.id]
        ):
            fields = ", ".join(f"{m}.{f}" for m, fs in SCORE_FIELDS.items() for f in fs)
            raise ValueError(f"rule {text!r}: only these dotted names exist: {fields}")
    elif isinstance(node, ast.Name) and node.id not in features and node.id not in SCORE_FIELDS:
        if node.id in ("true", "false", "none"):
            raise ValueError(f"rule {text!r}: write True, False or None for {node.id}")
        raise ValueError(f"rule {text!r} names {node.id!r}, which is not a feature")
    elif isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not):
        raise ValueError(f"rule {text!r}: only 'not' may prefix an expression")


def _evaluate(node: ast.AST, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.BoolOp):
        results = (_evaluate(v, values) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        return not _evaluate(node.operand, values)
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, values)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comparator, values)
            # A missing value makes a comparison false: no play fires on what is not known.
            if left is None or right is None:
                return False
            try:
                if not _COMPARISONS[type(op)](left, right):
                    return False
            except TypeError:
                return False
            left = right
        return True
    if isinstance(node, ast.Name):
        return values.get(node.id)
    if isinstance(node, ast.Attribute):
        assert isinstance(node.value, ast.Name)
        return values.get(f"{node.value.id}.{node.attr}")
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_evaluate(e, values) for e in node.elts]
    raise ValueError(f"unexpected {type(node).__name__} in a checked rule")


def playbook_path(settings: Settings) -> Path:
    return settings.config_dir / "playbooks.yaml"


def actions(plays: list[Play], values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The plays that apply to one account, highest priority first, with their messages."""
    return [play.action(values) for play in plays if play.applies(values)]


def _shown(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 10 else f"{value:,.0f}"
    return "unknown" if value is None else value
