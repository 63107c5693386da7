"""Reference-reel analysis: pure functions on decoded luma frames (numpy uint8), no files.

A reel is analysed from two small pictures per frame, both taken from the luma (Y) plane:
- the *analysis picture*, the frame point-sampled to about 180 px high; its centre (the middle
  70% each way, so letterbox bars and burnt-in logos near the edge do not count) gives the
  frame's brightness, contrast and sharpness (variance of the Laplacian);
- the *thumb*, block means of the analysis picture at THUMB_SHAPE, kept for every analysed
  frame (576 bytes each): cuts, flashes and near-duplicates are found on these.

Cuts: the mean absolute luma difference between consecutive thumbs, compared with the median of
the differences around it (an adaptive threshold: PySceneDetect's AdaptiveDetector idea). A
difference is a spike when it is at least CUT_MIN_SCORE and CUT_RATIO times that local median, so
camera motion and fades (many similar differences in a row) are not cuts. Spikes within
FLASH_FRAMES of each other are one event; an event after which the picture comes back (to within
a fixed bound: CUT_MIN_SCORE plus the camera's motion over the gap) is a flash (a muzzle flash,
lightning), and among other spikes within RETURN_SECONDS, one whose picture comes back or was
there just before is a strobe phase; neither is a cut (detect_cuts). Dissolves (find_dissolves)
split their shots at the middle, and their frames are never picked.

Letterbox and pillarbox bars: rows (columns) that are bar in every analysed frame, counted from
each edge; in a frame, a row is bar when its samples, bright text left out, are black on average
(BAR_DARK), or lifted black (BAR_LUMA) and flat, so subtitles burnt into the bar leave it a bar
(see Bars).
"""

import math
import re
from dataclasses import dataclass, field

import numpy as np

THUMB_SHAPE = (18, 32)  # (rows, columns) of the per-frame thumb: cuts, flashes, duplicates
ANALYSIS_HEIGHT = 180  # the analysis picture is point-sampled to about this many rows
CENTER = 0.15  # stats use the frame minus this fraction at each edge (bars, logos)

CUT_MIN_SCORE = 10.0  # mean absolute thumb difference (0..255) below which nothing is a cut
CUT_RATIO = 3.0  # a cut's difference is at least this many times the local median difference
CUT_WINDOW = 3  # frames each side whose differences make the local median
FLASH_FRAMES = 3  # spikes this close together are one event (the two edges of a flash)
RETURN_SECONDS = 0.5  # a spike among others whose picture comes back within this is a strobe
RETURN_SHARE = 0.35  # ... to within this share of the change across the spike (and the fixed bound)
MIN_SHOT_FRAMES = 4  # a second cut closer than this to the previous one is ignored

BLACK_LUMA = 40  # a frame whose bright end (mean + 2 std of the centre) is below this is black
WHITE_LUMA = 215  # a frame whose dark end (mean - 2 std) is above this is white
FADE_CONTRAST = 0.6  # a frame with less than this share of the contrast around it is a fade
FADE_SECONDS = 1.0  # ... around it: this far each way, within its shot
BLUR_SHARPNESS = 0.2  # a pick less sharp than this share of the picks' median is blurry
DUPLICATE_BITS = 8  # picks whose 64-bit difference hashes differ in this many bits or fewer
REFILL_TRIES = 20  # frames tried per missing pick when replacing dropped ones
BAR_DARK = 28.0  # a row whose samples below BAR_TEXT average at most this is bar (black is 16),
BAR_LUMA = 40.0  # and so is one averaging at most this (a lifted black, 30-33 after double levels)
BAR_FLAT = 6  # whose neighbouring samples differ by at most this (encoder ringing) in at least
BAR_FLAT_SHARE = 0.75  # this share of pairs (a dark picture is grainy, a bar flat)
BAR_TEXT = 64  # samples brighter than this are left out: burnt-in subtitles in the bar
BAR_SHARE = 0.25  # ... which may cover all but this share of the row
BAR_SAMPLES = 64  # about this many samples of each row (and column) are read
MIN_BAR = 2  # bars thinner than this (encoder padding, a dark edge) are left alone


@dataclass(frozen=True, slots=True)
class FrameStats:
    mean: float  # mean luma of the frame's centre, 0..255
    contrast: float  # standard deviation of that luma
    sharpness: float  # variance of the Laplacian of the centre of the analysis picture


@dataclass
class Bars:
    """Accumulates, over the analysed frames, which rows and columns ever held picture. In one
    frame a row is bar when its samples, bright text left out (subtitles burnt into the bar), are
    black on average (BAR_DARK), or a lifted black (BAR_LUMA) and flat. Rows are read in the middle
    half of the columns and columns in the middle half of the rows, where the other bars never
    reach."""

    rows: np.ndarray | None = None  # True where a row ever held picture
    columns: np.ndarray | None = None

    def add(self, luma):
        height, width = luma.shape
        across, down = max(1, width // 2 // BAR_SAMPLES), max(1, height // 2 // BAR_SAMPLES)
        rows = _holds_picture(luma[:, width // 4:width - width // 4:across])
        columns = _holds_picture(np.ascontiguousarray(luma[height // 4:height - height // 4:down, :].T))
        if self.rows is None:
            self.rows, self.columns = rows, columns
        elif self.rows.shape != rows.shape or self.columns.shape != columns.shape:
            raise ValueError(f"frame size changed from {self.columns.size}x{self.rows.size} to "
                             f"{columns.size}x{rows.size} within the video")
        else:
            self.rows |= rows
            self.columns |= columns

    def crop(self):
        """(top, bottom, left, right) pixels of bars; zeros when none or nothing was added."""
        if self.rows is None:
            return (0, 0, 0, 0)
        return edge_bars(self.rows, self.columns)


def _holds_picture(lines):
    """Per line (a row of samples) of a uint8 picture: False where the line is bar (see Bars)."""
    low = lines <= BAR_TEXT  # all but bright text
    count = np.count_nonzero(low, axis=1)
    level = (lines * low).sum(axis=1, dtype=np.uint32) / np.maximum(count, 1)
    near_black = lines <= BAR_LUMA  # flatness among these: the soft edges of the text left out too
    both = near_black[:, 1:] & near_black[:, :-1]
    step = np.abs(lines[:, 1:].astype(np.int16) - lines[:, :-1])
    flat = np.count_nonzero(both & (step <= BAR_FLAT), axis=1) >= BAR_FLAT_SHARE * np.count_nonzero(both, axis=1)
    bar = (count >= BAR_SHARE * lines.shape[1]) & ((level <= BAR_DARK) | ((level <= BAR_LUMA) & flat))
    return ~bar


def find_bars(row_peaks, column_peaks, threshold=BAR_DARK, min_bar=MIN_BAR):
    """(top, bottom, left, right): the runs of rows/columns at each edge whose peak luma never
    exceeds `threshold`."""
    return edge_bars(np.asarray(row_peaks) > threshold, np.asarray(column_peaks) > threshold, min_bar)


def edge_bars(row_picture, column_picture, min_bar=MIN_BAR):
    """(top, bottom, left, right): the runs of rows/columns without picture at each edge. A frame
    without picture anywhere has no bars: there is no picture to find the edge of."""
    def edge_run(picture):
        bright = np.flatnonzero(picture)
        if bright.size == 0:
            return None
        first, last = int(bright[0]), len(picture) - 1 - int(bright[-1])
        return (first if first >= min_bar else 0), (last if last >= min_bar else 0)

    rows, columns = edge_run(row_picture), edge_run(column_picture)
    if rows is None or columns is None:
        return (0, 0, 0, 0)
    return (*rows, *columns)


def describe_crop(crop, width, height):
    """"cropped 2.39:1 letterbox: 140 px top and bottom", or None when nothing is cropped."""
    top, bottom, left, right = crop
    if not any(crop):
        return None
    kept_w, kept_h = width - left - right, height - top - bottom
    kinds = []
    if top or bottom:
        kinds.append(("letterbox", _sides(top, bottom, "top", "bottom")))
    if left or right:
        kinds.append(("pillarbox", _sides(left, right, "left", "right")))
    label = " and ".join(kind for kind, _ in kinds)
    where = "; ".join(sides for _, sides in kinds)
    return f"cropped {kept_w / kept_h:.2f}:1 {label}: {where} (picture {kept_w}x{kept_h} of {width}x{height})"


def _sides(first, second, first_name, second_name):
    if first == second:
        return f"{first} px {first_name} and {second_name}"
    return f"{first} px {first_name}, {second} px {second_name}"


def analysis_step(height):
    """Point-sampling step that brings a frame `height` rows high to about ANALYSIS_HEIGHT."""
    return max(1, round(height / ANALYSIS_HEIGHT))


def center(picture, margin=CENTER):
    rows, cols = picture.shape
    dy, dx = int(rows * margin), int(cols * margin)
    return picture[dy:rows - dy or None, dx:cols - dx or None]


def frame_stats(picture):
    """FrameStats of an analysis picture (2-D luma, uint8)."""
    middle = center(picture).astype(np.float32)
    return FrameStats(float(middle.mean()), float(middle.std()), sharpness(middle))


def sharpness(luma):
    """Variance of the 4-neighbour Laplacian: high for crisp detail, low for blur."""
    x = np.asarray(luma, dtype=np.float32)
    if min(x.shape) < 3:
        return 0.0
    lap = (x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:] - 4 * x[1:-1, 1:-1])
    return float(lap.var())


def thumb(picture, shape=THUMB_SHAPE):
    """Block means of a 2-D luma picture at `shape` (uint8): the frame's fingerprint."""
    x = np.asarray(picture, dtype=np.float32)
    rows = np.linspace(0, x.shape[0], shape[0] + 1).astype(int)
    cols = np.linspace(0, x.shape[1], shape[1] + 1).astype(int)
    if np.any(np.diff(rows) == 0) or np.any(np.diff(cols) == 0):
        raise ValueError(f"picture {x.shape[1]}x{x.shape[0]} is smaller than the thumb {shape}")
    sums = np.add.reduceat(np.add.reduceat(x, rows[:-1], axis=0), cols[:-1], axis=1)
    areas = np.outer(np.diff(rows), np.diff(cols))
    return np.round(sums / areas).astype(np.uint8)


def differences(thumbs):
    """Mean absolute difference of each thumb from the one before (0 for the first); in chunks,
    so a long reel's thumbs are never widened all at once."""
    thumbs = np.asarray(thumbs)
    scores = np.zeros(len(thumbs), dtype=np.float32)
    for at in range(1, len(thumbs), _CHUNK):
        block = thumbs[at - 1:at + _CHUNK].astype(np.int16)
        scores[at:at + len(block) - 1] = np.abs(np.diff(block, axis=0)).mean(axis=(1, 2), dtype=np.float32)
    return scores


def _mad(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@dataclass
class CutResult:
    cuts: list  # frame indices where a new shot starts (never 0)
    flashes: list  # frame indices of spikes taken as flashes or strobes, not cuts
    scores: np.ndarray = field(repr=False, default=None)


def detect_cuts(thumbs, rate=24.0, min_score=CUT_MIN_SCORE, ratio=CUT_RATIO, window=CUT_WINDOW,
                flash_frames=FLASH_FRAMES, min_shot=MIN_SHOT_FRAMES):
    """Cuts in a run of consecutive frames' thumbs ([N, h, w] uint8) at `rate` fps; see the module
    doc. Spikes (adaptive threshold) within flash_frames of each other are one event: the two
    edges of a flash. An event is no cut when the picture before it comes back after it (a
    flash), or, among other spikes within RETURN_SECONDS (a strobe), when the picture before it
    comes back or the one after it was there before. "Comes back" is a fixed bound, min_score
    plus the camera motion over the gap, never a share of the spike: a white flash between two
    shots hides no cut. A cut goes on the event's last spike: the first frame of the next shot."""
    thumbs = np.asarray(thumbs)
    scores = differences(thumbs)
    count = len(thumbs)
    spikes = []
    for i in range(1, count):
        score = scores[i]
        if score < min_score:
            continue
        around = np.concatenate([scores[max(1, i - window):i], scores[i + 1:i + 1 + window]])
        if around.size and score < ratio * float(np.median(around)):
            continue
        spikes.append(i)
    spike_set = set(spikes)
    horizon = max(flash_frames + 1, round(RETURN_SECONDS * float(rate)))

    def motion(i):
        calm = [scores[j] for j in range(max(1, i - 2 * window), min(count, i + 2 * window + 1))
                if j not in spike_set]
        return float(np.percentile(calm, 75)) if calm else 0.0  # not the median: a strobe's dark half is still

    def same(a, b, gap, share=math.inf):  # the motion allowance stops at a flash's length
        bound = min(min_score + min(gap, flash_frames + 1) * motion(a), share)
        return _mad(thumbs[a], thumbs[b]) < bound

    events, cuts, flashes = [], [], []
    for i in spikes:
        if events and i - events[-1][-1] <= flash_frames:
            events[-1].append(i)
        else:
            events.append([i])
    for event in events:
        first, last = event[0], event[-1]
        before, after = first - 1, last
        if same(before, after, after - before):
            flashes.extend(event)
            continue
        # Among other spikes (a strobe), "comes back" is also closer than RETURN_SHARE of the change
        # across this event: a cut next to a flash stays a cut however busy the camera.
        others = [j for j in spikes if j not in event and before - horizon < j <= after + horizon]
        share = RETURN_SHARE * _mad(thumbs[before], thumbs[after])
        if others and (any(same(before, k, k - before, share) for k in range(after + 1, min(count, before + horizon + 1)))
                       or any(same(k, after, after - k, share) for k in range(max(0, after - horizon), before))):
            flashes.extend(event)
            continue
        if cuts and last - cuts[-1] < min_shot:
            continue
        cuts.append(last)
    return CutResult(cuts, flashes, scores)


DISSOLVE_HALVES = (3, 4, 5, 6, 8, 10, 12, 16, 20, 24)  # half-lengths tried: dissolves of 6-48 frames
DISSOLVE_MIN = 20.0  # the two ends of a dissolve differ by at least this (mean abs thumb difference)
DISSOLVE_FIT = 0.2  # every frame between is the ends' linear blend to within this share of that
DISSOLVE_CONTRAST = 6.0  # both ends have at least this spread (a fade to or from black is no dissolve)


def find_dissolves(thumbs, cuts=(), halves=DISSOLVE_HALVES):
    """[(first, last)] frames of the dissolves in a run of consecutive thumbs: windows whose frames
    are linear blends of its two ends (which differ by DISSOLVE_MIN or more, both with picture in
    them and not one a brighter copy of the other: that is a fade), the longest such window where
    several overlap, widened by a third of its length each side. No window holds a cut."""
    count = len(thumbs)
    if count < 2 * min(halves) + 1:
        return []
    # 9x16 block means (144 bytes a frame), compared in chunks: bounded memory on long reels.
    small = np.concatenate([
        ((np.asarray(thumbs[at:at + _CHUNK]).reshape(-1, THUMB_SHAPE[0] // 2, 2, THUMB_SHAPE[1] // 2, 2)
          .sum(axis=(2, 4), dtype=np.uint16) + 2) // 4).astype(np.uint8).reshape(-1, THUMB_SHAPE[0] * THUMB_SHAPE[1] // 4)
        for at in range(0, count, _CHUNK)])
    cut_at = np.zeros(count + 1, np.int32)
    cut_at[list(cuts)] = 1
    cuts_before = np.cumsum(cut_at)  # cuts_before[i]: cuts at or before frame i
    found = []
    for half in halves:
        for at in range(half, count - half, _CHUNK):
            centres = np.arange(at, min(at + _CHUNK, count - half))
            first = small[centres - half].astype(np.float32)
            last = small[centres + half].astype(np.float32)
            apart = np.abs(first - last).mean(axis=1)
            middle = np.abs(small[centres] - (first + last) / 2).mean(axis=1)
            maybe = (apart >= DISSOLVE_MIN) & (middle <= DISSOLVE_FIT * apart)
            maybe &= cuts_before[centres + half] == cuts_before[centres - half]
            found += _linear_windows(small, centres[maybe], half, apart[maybe])
    kept = []
    for start, end in sorted(found, key=lambda item: (item[0] - item[1], item[0])):  # longest first
        if all(end < other_start or start > other_end for other_start, other_end in kept):
            kept.append((start, end))
    # The window found is where the blend is linear to within DISSOLVE_FIT: up to a third longer
    # than the dissolve between still shots, shorter with the camera moving in both; each side
    # gets a third of its length more.
    spans = []
    for start, end in sorted(kept):
        reach = (end - start) // 3
        spans.append((max(0, start + 1 - reach), min(count - 1, end - 1 + reach)))
    return spans


_CHUNK = 1024  # frames compared at once: transient memory stays a few MB


def _linear_windows(small, centres, half, differences):
    """[(start, end)] of the windows about `centres` whose every frame is the ends' linear blend."""
    found = []
    for centre, difference in zip(centres, differences):
        start, end = int(centre) - half, int(centre) + half
        a, b = small[start].astype(np.float32), small[end].astype(np.float32)
        if min(a.std(), b.std()) < DISSOLVE_CONTRAST:
            continue
        scale = float(a @ b) / max(float(a @ a), 1e-6)
        if np.abs(b - scale * a).mean() < 0.5 * difference:
            continue  # one end is the other brighter or darker: a fade, or a light change
        weights = np.linspace(0, 1, end - start + 1, dtype=np.float32)[:, None]
        model = a * (1 - weights) + b * weights
        if np.abs(small[start:end + 1] - model).mean(axis=1).max() <= DISSOLVE_FIT * difference:
            found.append((start, end))
    return found


def shots_from_cuts(cuts, frame_count, starts=()):
    """[(start, end)) frame ranges of the shots; `starts` are extra boundaries (analysis windows)."""
    bounds = sorted({0, frame_count, *cuts, *starts})
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def classify_frames(stats, shots, rate=24.0, dissolves=()):
    """A reason per frame ('black', 'white', 'dissolve', 'fade') or None when it may be picked. A
    fade is judged against the frames around it (FADE_SECONDS each way, within its shot), not the
    whole shot: a dimmer shot merged with a brighter one (a missed cut) keeps its frames. Frames
    of a dissolve ((first, last) pairs) and one each side of it hold two pictures: never picked."""
    reasons = [None] * len(stats)
    for first, last in dissolves:
        for i in range(max(0, first - 1), min(len(stats), last + 2)):
            reasons[i] = "dissolve"
    reach = max(1, round(FADE_SECONDS * float(rate)))
    for start, end in shots:
        for i in range(start, end):
            s = stats[i]
            if reasons[i]:
                continue
            if s.mean + 2 * s.contrast < BLACK_LUMA:
                reasons[i] = "black"
            elif s.mean - 2 * s.contrast > WHITE_LUMA:
                reasons[i] = "white"
        lit = np.array([stats[i].contrast if reasons[i] is None else 0.0 for i in range(start, end)], np.float32)
        if not lit.any():
            continue
        padded = np.pad(lit, reach)
        around = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1).max(axis=1)
        for offset in np.flatnonzero((lit < FADE_CONTRAST * around) & (lit > 0)):
            reasons[start + int(offset)] = "fade"
    return reasons


def difference_hash(picture):
    """64-bit difference hash (dHash) of a 2-D luma picture: neighbouring block brightness
    comparisons, robust to compression and small changes of exposure."""
    blocks = thumb(picture, (8, 9)).astype(np.int16)
    bits = (blocks[:, 1:] > blocks[:, :-1]).flatten()
    return int(sum(1 << index for index, bit in enumerate(bits) if bit))


def hamming(a, b):
    return bin(a ^ b).count("1")


@dataclass
class Choice:
    picks: list  # frame indices, in time order
    per_shot: dict  # shot number (0-based) -> frames taken
    skipped: list  # (frame index, reason) of candidates dropped: 'duplicate' or 'blurry'


def choose_frames(shots, reasons, stats, thumbs, count):
    """Up to `count` frames spread over the shots (see README): one per shot while shots >= count
    (shots spread evenly over the reel), otherwise every shot gets one and the rest go to the
    longer shots; each shot is cut into as many windows as it gets picks and the sharpest usable
    frame of each window is taken. Near-duplicates of an earlier pick and blurry picks dropped."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"frames must be a whole number >= 1, got {count!r}")
    usable = [[i for i in range(a, b) if reasons[i] is None] for a, b in shots]
    live = [n for n, frames in enumerate(usable) if frames]
    allocation = _allocate([len(usable[n]) for n in live], count)
    candidates = []
    for n, k in zip(live, allocation):
        for window in np.array_split(np.asarray(usable[n]), k) if k else []:
            if window.size:
                candidates.append((n, int(max(window, key=lambda i: stats[i].sharpness))))
    candidates.sort(key=lambda item: item[1])
    sharp = [stats[i].sharpness for _, i in candidates]
    floor = BLUR_SHARPNESS * float(np.median(sharp)) if sharp else 0.0
    picks, skipped, hashes, per_shot = [], [], [], {}

    def take(n, i, report=True):
        if stats[i].sharpness < floor:
            skipped.extend([(i, "blurry")] if report else [])
            return False
        code = difference_hash(thumbs[i])
        if any(hamming(code, other) <= DUPLICATE_BITS for other in hashes):
            skipped.extend([(i, "duplicate")] if report else [])
            return False
        hashes.append(code)
        picks.append(i)
        per_shot[n] = per_shot.get(n, 0) + 1
        return True

    for n, i in candidates:
        take(n, i)
    # Dropped picks are replaced: the usable frame farthest from every pick, shot by shot as
    # above, until `count` or no frame is left that is sharp and new (a bounded number of tries).
    starts = np.array([a for a, _ in shots])
    pool = sorted(set(i for frames in usable for i in frames) - set(picks))
    tries = REFILL_TRIES * max(0, min(count, len(pool) + len(picks)) - len(picks))
    while len(picks) < count and pool and tries > 0:
        tries -= 1
        taken = np.array(sorted(picks))
        candidates_ = np.array(pool)
        if taken.size:
            where = np.searchsorted(taken, candidates_)
            left = np.abs(candidates_ - taken[np.clip(where - 1, 0, taken.size - 1)])
            right = np.abs(taken[np.clip(where, 0, taken.size - 1)] - candidates_)
            distance = np.minimum(left, right)
        else:
            distance = np.zeros(len(pool))
        best = int(candidates_[int(np.argmax(distance))])
        pool.remove(best)
        take(int(np.searchsorted(starts, best, side="right")) - 1, best, report=False)  # tries: not reported
    picks.sort()
    return Choice(picks, per_shot, skipped)


def _allocate(sizes, count):
    """Picks per shot: one each for `count` evenly spread shots when shots >= count; else one
    each plus the rest in proportion to usable length (largest remainder), never more picks
    than a shot has usable frames."""
    shots = len(sizes)
    if shots == 0:
        return []
    if shots >= count:
        chosen = {int(round(x)) for x in np.linspace(0, shots - 1, count)}
        return [1 if n in chosen else 0 for n in range(shots)]
    allocation = [1] * shots
    spare = min(count, sum(sizes)) - shots
    while spare > 0:
        room = [n for n in range(shots) if allocation[n] < sizes[n]]
        total = sum(sizes[n] for n in room)
        shares = {n: spare * sizes[n] / total for n in room}
        given = 0
        for n in room:
            extra = min(int(shares[n]), sizes[n] - allocation[n])
            allocation[n] += extra
            given += extra
        if given == 0:  # hand out the rest by largest remainder, one each
            for n in sorted(room, key=lambda n: -(shares[n] - int(shares[n])))[:spare]:
                allocation[n] += 1
                given += 1
        spare -= given
    return allocation


# --- timecodes ----------------------------------------------------------------------------------

def timecode(frame_number, fps):
    """"00h01m23s12f" for frame `frame_number` (0-based) at `fps` (non-drop, nominal rate)."""
    base = max(1, round(float(fps)))
    seconds, frames = divmod(int(frame_number), base)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}h{minutes:02d}m{seconds:02d}s{frames:02d}f"


def rate_text(fps):
    """"23.976", "29.97", "25": a frame rate as editors write it (three decimals at most)."""
    return f"{float(fps):.3f}".rstrip("0").rstrip(".")


def display_timecode(frame_number, fps):
    """"00:01:23:12" (SMPTE-style, non-drop) for reports and the preview."""
    return re.sub(r"[hms]", ":", timecode(frame_number, fps)).rstrip("f")


def parse_timecode(text, fps, name="start"):
    """Seconds from "1:23", "00:01:23", "83.5" or "00:01:23:12" (hh:mm:ss:ff, frames at `fps`);
    None for empty text. ValueError naming `name` otherwise."""
    text = (text or "").strip()
    if not text:
        return None
    parts = text.split(":")
    try:
        if len(parts) == 4:
            hours, minutes, seconds, frames = (int(p) for p in parts)
            if frames >= math.ceil(float(fps)):
                raise ValueError
            seconds = seconds + frames / float(fps)
        elif 1 <= len(parts) <= 3:
            seconds = float(parts[-1])
            minutes = int(parts[-2]) if len(parts) >= 2 else 0
            hours = int(parts[-3]) if len(parts) == 3 else 0
        else:
            raise ValueError
        if seconds < 0 or minutes < 0 or hours < 0 or not math.isfinite(seconds) \
                or (len(parts) > 1 and (seconds >= 60 or (len(parts) > 2 and minutes >= 60))):
            raise ValueError
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a timecode: use seconds (83.5), mm:ss (1:23), "
                         "hh:mm:ss (0:01:23) or hh:mm:ss:ff (00:01:23:12)") from None
    return hours * 3600 + minutes * 60 + seconds
