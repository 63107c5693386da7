"""LookDev: teach a diffusion model a visual style from a few reference images, then render
storyboards in it, inside ComfyUI.

ComfyUI imports this package from custom_nodes/. Importing it registers node classes and nothing
else: no GPU queries, downloads or file writes happen until a node runs.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
