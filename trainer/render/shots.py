"""Shot lists: the filmmaker's list of shots, from multiline text or a CSV file.

Text format, one shot per line, fields separated by "|" (all but the description optional):

    ID | description | seed | aspect | negative | duration | notes

A line with no "|" is just a description. Blank lines and lines starting with "#" are skipped.
Empty fields mean "not given": `| a wide shot | 42` gets an automatic id. Automatic ids follow the
shot's position among the shot lines (shot_001, shot_002, ...), so give ids explicitly for a
sequence you will edit. The duration is in seconds ("3", "2.5", "2.5s" or "1:30" for minutes and
seconds), more than 0 and at most 10 minutes; a shot without one takes the shot list's default.
Notes are free text for the editor (camera, motion, dialogue); they go into the animatic's slate,
EDL comments and CSV, never into the prompt.

CSV format: a header row naming some of the columns shot_id, description, seed, aspect, negative,
duration, notes (any case; "Shot ID" works), description required; quoting as Excel writes it; a
UTF-8 BOM is fine. Headers are matched as filmmakers write them: a unit in brackets is ignored
("Duration (s)"), "Shot", "Shot #" and "Shot No" mean shot_id, "Dur", "Length", "Seconds" and
"Time" mean duration. Several note columns ("Notes", "Camera", "Movement", "Dialogue", ...) are
joined into the shot's notes, each but a plain "Notes" prefixed with its header ("Camera: dolly
in"). Other columns (lens, ...) are allowed and listed in `warnings`, since shot lists often
carry them; a misspelt column therefore shows up there, and a missing description is an error.

Shot ids name the frame files, so they must be safe file names: letters, digits, "-", "_", ".",
starting with a letter or digit, at most 64 characters, not ending in "." and not a name Windows
reserves (CON, NUL, COM1, ...). Anything else is rejected with a suggested spelling, never
rewritten silently, so a frame is always named exactly as its shot. Ids that differ only in case
count as duplicates because macOS and Windows file systems treat them as the same file.

Problems are collected, never dropped: each parser returns every shot it could read plus a
problem per bad line; `ShotList.raise_if_problems()` turns them into one ValueError.
"""

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .framing import MAX_SEED, normalize_aspect
from ..unicode_paths import on_disk

CSV_COLUMNS = ("shot_id", "description", "seed", "aspect", "negative", "duration", "notes")
TEXT_FIELDS = ("ID", "description", "seed", "aspect", "negative", "duration", "notes")
MAX_DURATION = 600.0  # seconds; a longer "shot" is a typo (600 for 6.00) or a whole scene
# CSV header spellings (after tidying: lower case, brackets dropped, other punctuation -> "_")
COLUMN_ALIASES = {
    "shot": "shot_id", "shot_no": "shot_id", "shot_number": "shot_id", "id": "shot_id",
    "dur": "duration", "length": "duration", "seconds": "duration", "secs": "duration", "time": "duration",
}
NOTE_COLUMNS = ("notes", "note", "camera", "camera_movement", "movement", "motion", "dialogue", "dialog")

_MAX_ID_LENGTH = 64
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{kind}{n}" for kind in ("COM", "LPT") for n in range(1, 10)}


@dataclass(frozen=True)
class Shot:
    shot_id: str = field(metadata={"help": "Safe file name the frame is saved under, e.g. 'sc01_sh010'."})
    description: str = field(metadata={"help": "What the shot shows; becomes the middle of the prompt."})
    seed: int | None = field(default=None, metadata={"help": "The shot's own seed, or None to follow the seed policy."})
    aspect: str | None = field(default=None, metadata={"help": "Aspect preset name, or None for the storyboard's default."})
    negative: str | None = field(default=None, metadata={"help": "Extra negative prompt for this shot only."})
    line: int = field(default=0, metadata={"help": "Line of the source text or file the shot came from (1-based)."})
    duration: float | None = field(default=None, metadata={"help": "Seconds the shot lasts in the animatic, or "
                                                                    "None for the shot list's default."})
    notes: str | None = field(default=None, metadata={"help": "Camera, motion or dialogue notes for the editor; "
                                                              "not part of the prompt."})


@dataclass(frozen=True)
class ShotProblem:
    line: int | None  # None: a problem of the whole list (e.g. it is empty)
    message: str

    def __str__(self):
        return self.message if self.line is None else f"line {self.line}: {self.message}"


@dataclass
class ShotList:
    shots: list = field(default_factory=list, metadata={"help": "The shots that parsed, in order."})
    problems: list = field(default_factory=list, metadata={"help": "ShotProblem per bad line."})
    warnings: list = field(default_factory=list, metadata={"help": "ShotProblem per thing ignored on purpose (unused CSV columns)."})
    source: str = field(default="shot list", metadata={"help": "Where the shots came from, for messages."})

    def __len__(self):
        return len(self.shots)

    def __iter__(self):
        return iter(self.shots)

    def raise_if_problems(self):
        """Raise one ValueError listing every problem with its line number; return self if none."""
        if not self.problems:
            return self
        count = len(self.problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        raise ValueError(f"{self.source} has {count} problem{'s' if count > 1 else ''}; fix and run again:\n{lines}")


def suggest_shot_id(text):
    """A safe spelling of `text` for error messages ('sc 01/a' -> 'sc_01_a')."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:_MAX_ID_LENGTH].rstrip(".")
    if safe.split(".")[0].upper() in _WINDOWS_RESERVED:
        safe = f"{safe}_shot"
    return safe or "shot_1"


def validate_shot_id(shot_id):
    """Return `shot_id` if it is a safe file name (see module doc), else raise ValueError."""
    if not isinstance(shot_id, str) or not shot_id:
        raise ValueError(f"shot id {shot_id!r} is empty or not text")
    hint = f"; for example {suggest_shot_id(shot_id)!r}"
    if len(shot_id) > _MAX_ID_LENGTH:
        raise ValueError(f"shot id {shot_id[:20]!r}... is longer than {_MAX_ID_LENGTH} characters{hint}")
    if not _SAFE_ID.fullmatch(shot_id) or shot_id.endswith("."):
        raise ValueError(
            f"shot id {shot_id!r} can't be a file name: use letters, digits, '-', '_' and '.', "
            f"starting with a letter or digit and not ending in '.'{hint}")
    if shot_id.split(".")[0].upper() in _WINDOWS_RESERVED:
        raise ValueError(f"shot id {shot_id!r} is a file name Windows reserves{hint}")
    return shot_id


def _tidy(text):
    return " ".join(text.split())


def _parse_seed(text):
    if not re.fullmatch(r"\d+", text) or int(text) > MAX_SEED:
        raise ValueError(f"seed {text!r} is not a whole number from 0 to {MAX_SEED}")
    return int(text)


def parse_duration(text):
    """Seconds from "3", "2.5", "2,5", "2.5s" or "1:30" (minutes:seconds); ValueError unless more than
    0 and at most MAX_DURATION."""
    cleaned = text.strip().lower().replace(",", ".")
    minutes = re.fullmatch(r"(\d+):([0-5]?\d(?:\.\d+)?)", cleaned)
    number = re.fullmatch(r"([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)\s*(?:s|sec|secs|seconds)?", cleaned)
    if minutes:
        seconds = int(minutes.group(1)) * 60 + float(minutes.group(2))
    elif number:
        seconds = float(number.group(1))
    else:
        raise ValueError(f"duration {text!r} is not a number of seconds (write e.g. 3, 2.5, 2.5s or 1:30)")
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be more than 0 seconds")
    if seconds > MAX_DURATION:
        raise ValueError(f"duration {text!r} is longer than {MAX_DURATION / 60:g} minutes ({seconds:g} s); "
                         "a shot that long is likely a typo; split a long take into shots")
    return seconds


def _read_fields(fields):
    """(description, seed, aspect, negative, duration, notes, [problem messages]) from raw field texts keyed
    like CSV_COLUMNS."""
    messages = []
    description = _tidy(fields.get("description", ""))
    if not description:
        messages.append("the description is empty")
    seed_text, aspect_text = fields.get("seed", "").strip(), fields.get("aspect", "").strip()
    duration_text = fields.get("duration", "").strip()
    seed = _collect(messages, lambda: _parse_seed(seed_text)) if seed_text else None
    aspect = _collect(messages, lambda: normalize_aspect(aspect_text)) if aspect_text else None
    duration = _collect(messages, lambda: parse_duration(duration_text)) if duration_text else None
    return (description, seed, aspect, _tidy(fields.get("negative", "")) or None, duration,
            _tidy(fields.get("notes", "")) or None, messages)


def _collect(messages, check):
    try:
        return check()
    except ValueError as exc:
        messages.append(str(exc))
        return None


class _Collector:
    """Accumulates shots and problems; rejects duplicate ids (case-insensitively)."""

    def __init__(self, source):
        self.result = ShotList(source=source)
        self._seen = {}  # casefolded id -> line of first use
        self.count = 0  # shot lines seen, good or bad: the basis of automatic ids

    def add(self, line, fields):
        self.count += 1
        given = fields.get("shot_id", "").strip()
        shot_id = given or f"shot_{self.count:03d}"
        messages = []
        if _collect(messages, lambda: validate_shot_id(shot_id)):  # checked even if the rest of the line is bad
            first = self._seen.setdefault(shot_id.casefold(), line)
            if first != line:
                messages.append(f"shot id {shot_id!r}{'' if given else ' (automatic id)'} is already used on "
                                f"line {first}; frames are saved by shot id, so each id must be unique")
        description, seed, aspect, negative, duration, notes, field_messages = _read_fields(fields)
        messages += field_messages
        if not messages:
            self.result.shots.append(Shot(shot_id, description, seed, aspect, negative, line, duration, notes))
        self.problem(line, *messages)

    def problem(self, line, *messages):
        self.result.problems.extend(ShotProblem(line, message) for message in messages)

    def finish(self, hint):
        if not self.result.shots and not self.result.problems:
            self.problem(None, f"there are no shots; {hint}")
        return self.result


def parse_shot_text(text, source="shot list"):
    """Parse the multiline "ID | description | seed | aspect | negative | duration | notes" format (module doc)."""
    collector = _Collector(source)
    for number, raw in enumerate(re.split(r"\r\n|\r|\n", text.lstrip("\ufeff")), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = [part.strip() for part in stripped.split("|")]
        if len(parts) > len(TEXT_FIELDS):
            collector.count += 1
            collector.problem(number, f"too many fields ({len(parts)}); write at most "
                                      f"{' | '.join(TEXT_FIELDS)} and keep '|' out of descriptions")
            continue
        if len(parts) == 1:
            parts = ["", parts[0]]
        collector.add(number, dict(zip(CSV_COLUMNS, parts)))
    return collector.finish("write one shot per line: ID | description | seed | aspect")


def parse_shot_csv(text_or_path, source=None):
    """Parse CSV shots. A str is CSV text; a path (pathlib.Path / os.PathLike) is read as a file."""
    if isinstance(text_or_path, os.PathLike):
        path = Path(text_or_path)
        return parse_shot_csv(_read_text(path), source=source or str(path))
    collector = _Collector(source or "shot list")
    reader = csv.reader(io.StringIO(text_or_path.lstrip("\ufeff"), newline=""))
    columns, row_start = None, 1
    try:
        for row in reader:
            line, row_start = row_start, reader.line_num + 1
            if not any(cell.strip() for cell in row) or row[0].strip().startswith("#"):
                continue
            if columns is None:
                columns = _read_header(collector, line, row)
                if columns is None:
                    break
                continue
            _add_csv_row(collector, line, columns, row)
    except csv.Error as exc:
        collector.problem(row_start, f"the CSV can't be read from here on: {exc}")
    return collector.finish("add a row per shot below the header")


def column_name(cell):
    """The CSV_COLUMNS name a header cell stands for ("Duration (s)" -> "duration", "Shot #" -> "shot_id"),
    "notes" for any note column, else the tidied cell text."""
    tidy = re.sub(r"[^a-z0-9]+", "_", re.sub(r"\(.*?\)|\[.*?\]", "", cell.strip().lower())).strip("_")
    if tidy in NOTE_COLUMNS:
        return "notes"
    return COLUMN_ALIASES.get(tidy, tidy)


def _read_header(collector, line, row):
    """Column names from the header row, or None (with a problem reported) if unusable."""
    names = [column_name(cell) for cell in row]
    if "description" not in names:
        found = ", ".join(repr(cell.strip()) for cell in row)
        hint = next((f"; the file seems to use {sep!r} between columns, save it comma-separated"
                     for sep in (";", "\t") if sep in "".join(row)), "")
        collector.problem(line, f"the first line must be a header naming the columns, with at least "
                                f"'description' (known: {', '.join(CSV_COLUMNS)}); found {found}{hint}")
        return None
    for cell, name in zip(row, names):
        if name and name not in CSV_COLUMNS:
            collector.result.warnings.append(ShotProblem(
                line, f"column {cell.strip()!r} is not used; LookDev reads {', '.join(CSV_COLUMNS)}"))
    for name in sorted({name for name in names if name and name != "notes" and names.count(name) > 1}):
        collector.problem(line, f"column {name!r} appears more than once in the header")
    return _Columns(names, row)


class _Columns(list):
    """The header's column names, remembering each cell as written (notes are prefixed with it)."""

    def __init__(self, names, headers):
        super().__init__(names)
        self.headers = [header.strip() for header in headers]


def _add_csv_row(collector, line, columns, row):
    if len(row) > len(columns):
        collector.count += 1
        collector.problem(line, f"too many fields ({len(row)}) for the {len(columns)} header columns; "
                                "put a description containing commas in double quotes")
        return
    fields = {name: cell for name, cell in zip(columns, row) if name in CSV_COLUMNS and name != "notes"}
    notes = [(header, cell.strip()) for header, name, cell in zip(columns.headers, columns, row)
             if name == "notes" and cell.strip()]
    fields["notes"] = "; ".join(text if header.lower() in ("notes", "note") else f"{header}: {text}"
                                for header, text in notes)
    collector.add(line, fields)


def _read_text(path):
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ValueError(f"shot list {path} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"shot list {path} is not UTF-8 text; save it as UTF-8 (CSV UTF-8 in Excel)") from exc


def shot_file_path(input_dir, name):
    """Where the shot list file `name` is: an absolute path as given, else inside `input_dir`
    (ComfyUI's input folder). A relative name may not lead out of it ("..", a symlink elsewhere)."""
    text = (name or "").strip()
    if not text:
        raise ValueError("shots_file is empty; give a file name in ComfyUI's input folder or an absolute path")
    target = Path(text)
    if not target.is_absolute():
        root = Path(input_dir).resolve()
        target = (root / target).resolve()
        if not target.is_relative_to(root):
            raise ValueError(f"shots_file {text!r} leads outside ComfyUI's input folder {root}; move the file "
                             "into the input folder or give its absolute path")
    target = on_disk(target)  # a name typed in NFC finds the file stored in NFD, and back
    if target.is_dir():
        raise ValueError(f"shots_file {text!r} is a folder; name the .csv or text file in it")
    if target.exists() and not target.is_file():  # reading a named pipe would wait forever
        raise ValueError(f"shots_file {text!r} is not a regular file (a named pipe, socket or device); "
                         "name the .csv or text file")
    return target


def load_shot_file(path):
    """Read a shot list file: .csv as CSV, anything else as the "|" text format."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return parse_shot_csv(path)
    return parse_shot_text(_read_text(path), source=str(path))


def format_shot_line(shot):
    """The one-line "ID | description | seed | aspect[ | negative[ | duration[ | notes]]]" text for `shot`
    (parses back to it)."""
    fields = [shot.shot_id, shot.description, "" if shot.seed is None else str(shot.seed), shot.aspect or "",
              shot.negative or "", "" if shot.duration is None else str(shot.duration), shot.notes or ""]
    while len(fields) > 4 and not fields[-1]:
        fields.pop()
    for name, value in zip(TEXT_FIELDS, fields):
        if "|" in value or "\n" in value or "\r" in value:
            raise ValueError(f"shot {shot.shot_id!r} (line {shot.line}): its {name} contains '|' or a line "
                             "break, which the one-line shot format can't hold; replace it")
    return " | ".join(fields)


def _prompt_parts(text):
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def build_prompt(shot, style_prefix="", style_suffix="", trigger_words=()):
    """The positive prompt: trigger words, style prefix, description, style suffix.

    `trigger_words` is a comma-separated string or a list. Each trigger appears once, first; a
    comma-separated part equal to a trigger (any case) is dropped from the rest, but a trigger
    inside a longer phrase is left alone. Whitespace around commas and empty parts are tidied.
    """
    words = _prompt_parts(trigger_words) if isinstance(trigger_words, str) else [
        part for word in trigger_words for part in _prompt_parts(word)]
    seen, triggers = set(), []
    for word in words:
        if word.casefold() not in seen:
            seen.add(word.casefold())
            triggers.append(word)
    rest = [part for text in (style_prefix, shot.description, style_suffix)
            for part in _prompt_parts(text) if part.casefold() not in seen]
    return ", ".join(triggers + rest)
