"""trainer/options.py: the one way configs declare their options."""

import dataclasses

import pytest

from lookdev.trainer.options import REQUIRED, check_options, help_of, option


@dataclasses.dataclass
class Example:
    count: int = option(4, "How many.", min=1, max=8)
    size: int = option(64, "Side in pixels.", min=64, max=256, step=64)
    mode: str = option("a", "Which one.", choices=("a", "b"))
    floor: float = option(0.5, "At least zero.", min=0.0)
    tags: list = option(REQUIRED, "Words.", factory=list)


@pytest.mark.parametrize("changes, message", [
    ({"count": 0}, "count must be between 1 and 8, got 0"),
    ({"count": 9}, "count must be between 1 and 8, got 9"),
    ({"size": 96}, "size must be a multiple of 64 between 64 and 256, got 96"),
    ({"size": 320}, "size must be a multiple of 64 between 64 and 256, got 320"),
    ({"mode": "c"}, "mode 'c' is not one of ['a', 'b']"),
    ({"floor": -0.1}, "floor must be at least 0.0, got -0.1"),
])
def test_check_options_names_the_field_and_its_limits(changes, message):
    with pytest.raises(ValueError) as error:
        check_options(Example(**changes))
    assert str(error.value) == message


def test_values_inside_the_limits_pass_and_help_is_kept():
    example = Example(count=8, size=256, mode="b", floor=0.0)
    assert check_options(example) is example
    assert help_of(Example, "size") == "Side in pixels."


def test_a_factory_gives_every_instance_its_own_value():
    first, second = Example(), Example()
    first.tags.append("noir")
    assert second.tags == [] and help_of(Example, "tags") == "Words."


def test_unknown_limits_are_a_programming_error():
    with pytest.raises(TypeError, match="unknown option limits"):
        option(1, "x", maximum=3)
