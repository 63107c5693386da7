"""Storyboard rendering: shot lists, frame sizes and seeds, frame files with metadata, contact
sheets and the headless batch renderer. Plain Python, PIL and numpy; no ComfyUI import.

Import the modules themselves (`from .render.shots import parse_shot_text`); this package imports
nothing, so the batch command line loads only what it uses.
"""
