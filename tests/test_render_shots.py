"""Shot lists: text and CSV parsing, id safety, problem reporting, one-line format, prompts."""

import pytest

from lookdev.trainer.render.shots import (
    Shot, build_prompt, format_shot_line, load_shot_file, parse_shot_csv, parse_shot_text, suggest_shot_id,
    validate_shot_id,
)


def fields(shot):
    return (shot.shot_id, shot.description, shot.seed, shot.aspect, shot.negative)


@pytest.mark.parametrize("line, expected", [
    ("a harbor at dawn", ("shot_001", "a harbor at dawn", None, None, None)),
    ("SH01 | a harbor at dawn", ("SH01", "a harbor at dawn", None, None, None)),
    ("SH01 | a harbor | 42", ("SH01", "a harbor", 42, None, None)),
    ("SH01 | a harbor | 42 | 2.39:1", ("SH01", "a harbor", 42, "2.39", None)),
    ("SH01 | a harbor | | 16:9", ("SH01", "a harbor", None, "1.78", None)),
    ("SH01 | a harbor | 7 | 4:3 | blurry, text", ("SH01", "a harbor", 7, "1.33", "blurry, text")),
    ("| a harbor | 3", ("shot_001", "a harbor", 3, None, None)),
    ("  sc1.sh-2_a  |   a   harbor\tat dawn  ", ("sc1.sh-2_a", "a harbor at dawn", None, None, None)),
    ("SH01 | close-up, hands, #3 take", ("SH01", "close-up, hands, #3 take", None, None, None)),
    ("SH01 | x | 18446744073709551615", ("SH01", "x", 2**64 - 1, None, None)),
    ("SH01 | x | | 9:16", ("SH01", "x", None, "9:16", None)),
])
def test_good_text_lines(line, expected):
    result = parse_shot_text(line)
    assert result.problems == []
    assert [fields(shot) for shot in result.shots] == [expected]


@pytest.mark.parametrize("line, reason", [
    ("SH01 | x | abc", "seed 'abc' is not a whole number"),
    ("SH01 | x | -1", "seed '-1' is not a whole number"),
    ("SH01 | x | 4.5", "seed '4.5' is not a whole number"),
    ("SH01 | x | 18446744073709551616", "is not a whole number from 0 to 18446744073709551615"),
    ("SH01 | x | 1 | 3:2", "unknown aspect '3:2'"),
    ("SH01 | x | 1 | scope", "unknown aspect 'scope'"),
    ("SH01 | x | 1 | 1.78 | neg | 2 | notes | extra", "too many fields (8)"),
    ("SH01 | x | | | | soon", "duration 'soon' is not a number of seconds"),
    ("SH01 | x | | | | 0", "duration '0' must be more than 0 seconds"),
    ("SH01 | x | | | | -2.5", "duration '-2.5' must be more than 0 seconds"),
    ("SH01 | x | | | | 601", "duration '601' is longer than 10 minutes"),
    ("SH01 | x | | | | 12:00", "duration '12:00' is longer than 10 minutes"),
    ("SH01 | x | | | | nan", "duration 'nan' is not a number of seconds"),
    ("SH01 | x | | | | 1e9", "duration '1e9' is not a number of seconds"),
    ("SH01 |", "the description is empty"),
    ("SH01 |   | 5", "the description is empty"),
    ("../up | x", "shot id '../up' can't be a file name"),
    ("a/b | x", "shot id 'a/b' can't be a file name"),
    ("a\\b | x", "can't be a file name"),
    (".hidden | x", "can't be a file name"),
    ("dot. | x", "not ending in '.'"),
    ("sc 01 | x", "for example 'sc_01'"),
    ("NUL | x", "a file name Windows reserves"),
    ("com1.v2 | x", "a file name Windows reserves"),
    ("x" * 65 + " | x", "longer than 64 characters"),
])
def test_bad_text_lines_are_reported_with_line_number(line, reason):
    result = parse_shot_text(f"# header comment\n\nGOOD | fine\n{line}\n")
    assert [shot.shot_id for shot in result.shots] == ["GOOD"]
    assert len(result.problems) == 1
    assert result.problems[0].line == 4
    assert reason in result.problems[0].message


def test_every_problem_of_a_line_is_reported():
    result = parse_shot_text("bad id | x | abc | 3:2")
    assert [problem.line for problem in result.problems] == [1, 1, 1]


@pytest.mark.parametrize("text, reason", [
    ("SH01 | a\nsh01 | b", "'sh01' is already used on line 1"),
    ("SH01 | a\nSH01 | b", "'SH01' is already used on line 1"),
    ("shot_002 | a\njust a description", "'shot_002' (automatic id) is already used on line 1"),
])
def test_duplicate_ids_are_errors(text, reason):
    result = parse_shot_text(text)
    assert len(result.shots) == 1
    assert [problem.line for problem in result.problems] == [2]
    assert reason in result.problems[0].message


def test_automatic_ids_follow_shot_lines_not_file_lines():
    result = parse_shot_text("# title\n\nfirst\nSH_X | second\n\n# note\nthird\nbad | x | y\nfifth")
    assert [shot.shot_id for shot in result.shots] == ["shot_001", "SH_X", "shot_003", "shot_005"]
    assert [shot.line for shot in result.shots] == [3, 4, 7, 9]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n   \n"])
def test_empty_list_is_an_error(text):
    result = parse_shot_text(text)
    assert result.shots == []
    with pytest.raises(ValueError, match="there are no shots; write one shot per line"):
        result.raise_if_problems()


def test_line_numbers_count_every_line_ending():
    result = parse_shot_text("A | x\r\nB | y\rC | z | nope\n")
    assert [problem.line for problem in result.problems] == [3]


def test_raise_if_problems_lists_every_problem_and_names_the_source():
    result = parse_shot_text("A | x | nope\nB | y | | 7:5\nC | ok", source="seq01.txt")
    with pytest.raises(ValueError) as caught:
        result.raise_if_problems()
    message = str(caught.value)
    assert "seq01.txt has 2 problems" in message
    assert "line 1: seed 'nope'" in message and "line 2: unknown aspect '7:5'" in message


def test_raise_if_problems_returns_the_list_when_clean():
    result = parse_shot_text("A | x\nB | y")
    assert result.raise_if_problems() is result
    assert len(result) == 2 and [shot.shot_id for shot in result] == ["A", "B"]


def test_bom_in_text_is_ignored():
    assert parse_shot_text("\ufeffSH1 | x").shots[0].shot_id == "SH1"


CSV_HEADER = "shot_id,description,seed,aspect,negative\n"


@pytest.mark.parametrize("text, expected", [
    (CSV_HEADER + "A1,a harbor,42,2.39:1,blurry\n", [("A1", "a harbor", 42, "2.39", "blurry")]),
    ("\ufeff" + CSV_HEADER + "A1,a harbor,,,\n", [("A1", "a harbor", None, None, None)]),
    ("Shot ID,DESCRIPTION\nA1,\"wide, dusk, rain\"\n", [("A1", "wide, dusk, rain", None, None, None)]),
    ("description\nfirst\nsecond\n", [("shot_001", "first", None, None, None), ("shot_002", "second", None, None, None)]),
    ("description,seed\n\"say \"\"cut\"\"\",5\n", [("shot_001", 'say "cut"', 5, None, None)]),
    (CSV_HEADER + "A1,\"two\nlines\"\n\nA2,next\n", [("A1", "two lines", None, None, None), ("A2", "next", None, None, None)]),
    (CSV_HEADER + "# a comment row\nA1,x\n,,,,\n", [("A1", "x", None, None, None)]),
    ("description,aspect\nx,4:3\r\ny,9:16\r\n", [("shot_001", "x", None, "1.33", None), ("shot_002", "y", None, "9:16", None)]),
])
def test_good_csv(text, expected):
    result = parse_shot_csv(text)
    assert result.problems == []
    assert [fields(shot) for shot in result.shots] == expected


@pytest.mark.parametrize("text, line, reason", [
    ("sh01,a wide shot,42\n", 1, "the first line must be a header"),
    ("shot_id;description\nA;x\n", 1, "seems to use ';' between columns"),
    ("description,description\nx,y\n", 1, "column 'description' appears more than once"),
    (CSV_HEADER + "A1,x,abc\n", 2, "seed 'abc' is not a whole number"),
    (CSV_HEADER + "A1,x,,21:9\n", 2, "unknown aspect '21:9'"),
    (CSV_HEADER + "A1,,5\n", 2, "the description is empty"),
    (CSV_HEADER + "A1,x,1,1.78,neg,extra\n", 2, "too many fields (6) for the 5 header columns"),
    (CSV_HEADER + "A1,x\na1,y\n", 3, "'a1' is already used on line 2"),
    (CSV_HEADER + "A1,\"multi\nline\"\n../A2,x\n", 4, "can't be a file name"),
    (CSV_HEADER, None, "there are no shots; add a row per shot below the header"),
])
def test_bad_csv(text, line, reason):
    result = parse_shot_csv(text)
    assert [problem.line for problem in result.problems] == [line]
    assert reason in result.problems[0].message


def test_unused_csv_columns_are_warnings_not_errors():
    result = parse_shot_csv("Shot_ID,Description,Lens,Notes\nA1,wide,35mm,check light\n")
    assert result.problems == [] and [shot.shot_id for shot in result.shots] == ["A1"]
    assert [(warning.line, warning.message.split(" is")[0]) for warning in result.warnings] == [(1, "column 'Lens'")]
    assert result.shots[0].notes == "check light"


@pytest.mark.parametrize("line, duration, notes", [
    ("SH01 | x | | | | 3", 3.0, None),
    ("SH01 | x | | | | 2.5s | dolly in, slow", 2.5, "dolly in, slow"),
    ("SH01 | x | | | | 2,5 sec", 2.5, None),
    ("SH01 | x | | | | 1:30", 90.0, None),
    ("SH01 | x | | | | 600", 600.0, None),
    ("SH01 | x | | | | | VO: 'not again'", None, "VO: 'not again'"),
])
def test_durations_and_notes_in_text(line, duration, notes):
    shot = parse_shot_text(line).raise_if_problems().shots[0]
    assert (shot.duration, shot.notes) == (duration, notes)
    assert fields(parse_shot_text(format_shot_line(shot)).shots[0]) == fields(shot)
    assert parse_shot_text(format_shot_line(shot)).shots[0].duration == duration


def test_csv_durations_and_notes_as_filmmakers_write_them():
    text = ("Shot #,Description,Duration (s),Camera,Dialogue,Notes\n"
            "SH010,wide harbor,3.5,slow push in,,fog machine\n"
            "SH020,close-up,,static,\"MARA: Not again.\",\n")
    result = parse_shot_csv(text).raise_if_problems()
    assert result.warnings == []
    assert [(s.shot_id, s.duration, s.notes) for s in result.shots] == [
        ("SH010", 3.5, "Camera: slow push in; fog machine"),
        ("SH020", None, "Camera: static; Dialogue: MARA: Not again."),
    ]


@pytest.mark.parametrize("header, row, reason", [
    ("shot_id,description,duration", "A1,x,abc", "line 2: duration 'abc' is not a number of seconds"),
    ("shot_id,description,Length", "A1,x,-1", "line 2: duration '-1' must be more than 0 seconds"),
    ("shot_id,description,Dur", "A1,x,3600", "line 2: duration '3600' is longer than 10 minutes"),
    ("shot_id,description,Duration,Seconds", "A1,x,1,2", "line 1: column 'duration' appears more than once"),
])
def test_bad_csv_durations(header, row, reason):
    result = parse_shot_csv(f"{header}\n{row}\n")
    assert [str(problem) for problem in result.problems][0].startswith(reason)


def test_csv_from_a_file_names_the_file(tmp_path):
    path = tmp_path / "seq.csv"
    path.write_bytes(("\ufeff" + CSV_HEADER + "A1,x,oops\n").encode("utf-8"))
    result = parse_shot_csv(path)
    with pytest.raises(ValueError, match=r"(?s)seq\.csv has 1 problem;.*line 2: seed 'oops'"):
        result.raise_if_problems()


@pytest.mark.parametrize("name, content, error", [
    ("missing.csv", None, "does not exist"),
    ("latin1.csv", "description\ncaf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
])
def test_unreadable_shot_files(tmp_path, name, content, error):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=error):
        load_shot_file(path)


@pytest.mark.parametrize("name, content, ids", [
    ("shots.csv", "description\nx\n", ["shot_001"]),
    ("shots.CSV", "shot_id,description\nA,x\n", ["A"]),
    ("shots.txt", "A | x\nB | y\n", ["A", "B"]),
])
def test_load_shot_file_picks_format_by_suffix(tmp_path, name, content, ids):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert [shot.shot_id for shot in load_shot_file(path)] == ids


@pytest.mark.parametrize("shot_id", ["a\n", "a b", "a/b", "..", "x.", "", None, "LPT9", "aux.png"])
def test_unsafe_ids_fail(shot_id):
    with pytest.raises(ValueError, match="shot id"):
        validate_shot_id(shot_id)


@pytest.mark.parametrize("shot_id", ["A", "sh010", "SC01_SH010", "1A", "a.b-c_d", "CONSOLE", "x" * 64])
def test_safe_ids_pass(shot_id):
    assert validate_shot_id(shot_id) == shot_id


@pytest.mark.parametrize("text, suggestion", [
    ("sc 01", "sc_01"), ("../etc/passwd", "etc_passwd"), ("a/b\\c", "a_b_c"), ("CON", "CON_shot"), ("///", "shot_1"),
])
def test_suggested_ids_are_safe(text, suggestion):
    assert suggest_shot_id(text) == suggestion
    assert validate_shot_id(suggestion) == suggestion


@pytest.mark.parametrize("shot", [
    Shot("A", "a harbor"),
    Shot("A", "wide, dusk", 42, "2.39"),
    Shot("A", "x", None, "9:16", "blurry, text"),
    Shot("A", "x", 0, None, "neg"),
])
def test_one_line_format_round_trips(shot):
    line = format_shot_line(shot)
    parsed = parse_shot_text(line).raise_if_problems().shots[0]
    assert fields(parsed) == fields(shot)


@pytest.mark.parametrize("shot, field_name", [
    (Shot("A", "a | b"), "description"),
    (Shot("A", "x", negative="no | pipes"), "negative"),
])
def test_one_line_format_refuses_separators(shot, field_name):
    with pytest.raises(ValueError, match=f"its {field_name} contains '\\|'"):
        format_shot_line(shot)


@pytest.mark.parametrize("prefix, suffix, triggers, description, expected", [
    ("", "", "", "a harbor", "a harbor"),
    ("film still", "35mm grain", "ldstyle", "a harbor", "ldstyle, film still, a harbor, 35mm grain"),
    ("ldstyle, film still,", ", grain ,", "ldstyle, LDStyle", "wide,  dusk", "ldstyle, film still, wide, dusk, grain"),
    ("", "", ["ldstyle", "ink wash, ldstyle"], "a harbor", "ldstyle, ink wash, a harbor"),
    ("", "", "ldstyle", "LDSTYLE, a harbor", "ldstyle, a harbor"),
    ("", "", "ldstyle", "an ldstyle painting", "ldstyle, an ldstyle painting"),
    (" , ,", ",", ["", " "], "x", "x"),
    ("(red, blue:1.2)", "", "", "x", "(red, blue:1.2), x"),
])
def test_build_prompt(prefix, suffix, triggers, description, expected):
    assert build_prompt(Shot("A", description), prefix, suffix, triggers) == expected
