#!/usr/bin/env python3
"""Render a LookDev shot list on running ComfyUI servers, without the browser.

    python scripts/batch_render.py --workflow storyboard_api.json --shots shots.csv \
        --server http://127.0.0.1:8188 --server http://10.0.0.7:8188 --out renders/seq01

Run with --help for every option. Needs only Python and Pillow, not ComfyUI: the servers do the rendering.
"""

import sys

from _pack import alias_pack

alias_pack()

from lookdev.trainer.render.batch import main  # noqa: E402  (needs the alias above)

if __name__ == "__main__":
    sys.exit(main())
