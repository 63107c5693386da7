"""One status line per phase of a long node (events.EVENT_STATUS), shown on the node by the web
extension and printed by the demo, so a node never looks hung between progress events."""

from . import comfy_bridge as bridge
from . import events


def send_status(node, prompt_id, phase, text, done=None, total=None):
    bridge.send_event(events.EVENT_STATUS, {"node": node, "prompt_id": prompt_id, "phase": phase, "text": text,
                                            "done": done, "total": total})


def duration(seconds):
    """12.3 -> '12s', 630 -> '10m 30s', 12600 -> '3h 30m' (as the web chart writes times)."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    return f"{s // 3600}h {s % 3600 // 60}m"
