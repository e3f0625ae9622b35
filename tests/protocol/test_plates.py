"""Chinese plate formats: which texts are plates, how they are written and masked."""

from __future__ import annotations

import pytest

from protocol.plates import PlateColour, expected_colour, formatted, is_new_energy, is_valid, masked, plain


@pytest.mark.parametrize("text", ["皖A73C39", "皖A·73C39", "藏D·T5022", "苏E·D51712", "粤B·12345",
                                  "京A·1234学", "沪A·1234警", "粤Z·1234港", "粤Z·1234澳", "鲁B·1234挂",
                                  "浙A·12345D", "苏E·D51712"])
def test_plates_that_are_well_formed(text: str) -> None:
    assert is_valid(text)


@pytest.mark.parametrize("text", ["", "皖A", "皖A7C39", "皖A·73C3", "皖A·73C391", "皖I·73C39",
                                  "皖A·73O39", "皖A·73I39", "AA·73C39", "皖1·73C39", "X皖A73C39",
                                  "皖A·警1234", "皖A·1234警5", "苏E·051712", "0010912", "DDS32"])
def test_texts_that_are_not_plates(text: str) -> None:
    assert not is_valid(text)


def test_formatted_puts_the_dot_after_the_city_letter_and_rejects_non_plates() -> None:
    assert formatted("皖a73c39") == "皖A·73C39"
    assert formatted("苏E D51712") == "苏E·D51712"
    with pytest.raises(ValueError, match="not a Chinese licence plate: '皖A73'"):
        formatted("皖A73")


def test_masking_hides_the_middle_of_the_number() -> None:
    assert masked("苏E·D51712") == "苏E·D5**12"
    assert masked("皖A·73C39") == "皖A·7**39"
    assert masked("苏ED51712") == "苏E·D5**12"
    assert "73C39" not in masked("皖A73C39")


def test_text_implied_colours() -> None:
    assert is_new_energy("苏E·D51712") and expected_colour("苏E·D51712") == PlateColour.GREEN
    assert expected_colour("沪A·1234警") == PlateColour.WHITE
    assert expected_colour("粤Z·1234港") == PlateColour.BLACK
    assert expected_colour("京A·1234学") == PlateColour.YELLOW
    assert expected_colour("皖A·73C39") is None
    assert plain("皖A·73c39") == "皖A73C39"
