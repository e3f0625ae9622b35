"""What changed between two camera configs, as field paths (the page's diff, the audit's record)."""

from __future__ import annotations

from typing import Any

Change = dict[str, Any]  # {"path": "zones[0].polygon", "old": ..., "new": ...}; a missing side is absent


def config_changes(old: Any, new: Any, path: str = "") -> list[Change]:
    """Leaf-level differences: mappings key by key, lists of ids (zones, rules) element by element, other
    values whole. A polygon is one value: moving a point changes `zones[i].polygon`."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[Change] = []
        for key in sorted(set(old) | set(new), key=lambda k: (k not in old, str(k))):
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                out.append({"path": sub, "old": old[key]})
            elif key not in old:
                out.append({"path": sub, "new": new[key]})
            else:
                out += config_changes(old[key], new[key], sub)
        return out
    if isinstance(old, list) and isinstance(new, list) and _records(old) and _records(new):
        out = [change for i, (a, b) in enumerate(zip(old, new, strict=False))
               for change in config_changes(a, b, f"{path}[{i}]")]
        out += [{"path": f"{path}[{i}]", "old": a} for i, a in enumerate(old[len(new):], len(new))]
        out += [{"path": f"{path}[{i}]", "new": b} for i, b in enumerate(new[len(old):], len(old))]
        return out
    return [] if old == new else [{"path": path, "old": old, "new": new}]


def _records(items: list[Any]) -> bool:
    return all(isinstance(i, dict) for i in items)
