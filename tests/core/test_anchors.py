"""Exact anchors: normalisation, names, conflicts and non-conflicts (auditor.anchors)."""

from __future__ import annotations

import pytest

from auditor.anchors import Conflict, anchors, conflict_matrix, find_conflict, missing_anchors


def keys(text: str, kind: str) -> list[str]:
    return [a.key for a in anchors(text) if a.kind == kind]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the county population was 9,984.", ["9984"]),
        ("the county population was 9984.", ["9984"]),
        ("over 1.5 million people", ["1500000"]),
        ("about 1,500,000 people", ["1500000"]),
        ("a rise of 12% in sales", ["12%"]),
        ("a rise of 12 percent in sales", ["12%"]),
        ("his 3rd album", ["3"]),
        ("costs 2.50 dollars", ["2.5"]),
    ],
)
def test_numbers_are_normalised(text: str, expected: list[str]) -> None:
    assert keys(text, "number") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("born on March 3, 1999 in Ohio", ["1999-03-03"]),
        ("born on 3 March 1999 in Ohio", ["1999-03-03"]),
        ("born on 1999-03-03 in Ohio", ["1999-03-03"]),
        ("released in March 1999", ["1999-03"]),
        ("founded in 1987.", ["1987"]),
        ("popular in the mid-1980s", ["1980s"]),
        ("born July 22 , 1947 in Ohio", ["1947-07-22"]),
        ("a crash at 2:00 PM", ["T14:00"]),
        ("a crash at 14:00", ["T14:00"]),
    ],
)
def test_dates_are_normalised(text: str, expected: list[str]) -> None:
    assert keys(text, "date") == expected
    assert keys(text, "number") == []  # a date's digits are not also a number


def test_names_skip_function_words_and_a_lone_first_word() -> None:
    text = "Founded as a rural village in 1838 on the banks of the Sturt River, Marion grew."
    assert [a.text for a in anchors(text) if a.kind == "name"] == ["Sturt", "River", "Marion"]
    lead = "Cooking Light is an American monthly magazine. He met Quincy Jones in March."
    assert [a.text for a in anchors(lead) if a.kind == "name"] == [
        "Cooking", "Light", "American", "Quincy", "Jones"]
    subject = "Shusett was executive producer. However, Vibe grew. Additionally it fell."
    assert [a.text for a in anchors(subject) if a.kind == "name"] == ["Shusett", "Vibe"]


def test_missing_anchors_after_normalisation() -> None:
    sentence = "On March 3, 1999 the town had 9,984 people and three schools, says Dvořák."
    passage = "The town had 9984 people on 3 March 1999 and three schools, says dvorak."
    assert missing_anchors(sentence, passage) == []
    assert [a.text for a in missing_anchors(sentence, "The town had 9,312 people.")] == [
        "March 3, 1999", "9,984", "Dvořák"]
    # a passage's full date holds its year; spelled-out numbers count for digits
    assert missing_anchors("It opened in 1999 with 3 stages.",
                           "It opened on 4 May 1999 with three stages.") == []
    # a rounded figure, a year range's end, a spelled-out short form
    assert missing_anchors("It spent over 1.5 million in the UK from 2007-2011.",
                           "It spent 1,580,575 in Britain ( 2007 -- 11 ).") == []
    assert [a.text for a in missing_anchors("It spent 1.5 million.", "It spent 1,680,575.")] == [
        "1.5 million"]


def test_a_section_label_is_not_a_name() -> None:
    """SciFact abstracts open with a label in capitals; the word after it is a first word."""
    assert anchors("UNLABELLED Congruent audiovisual speech enhances our ability.") == []
    assert [a.text for a in anchors("RESULTS We found 12 cases in Ohio.")] == ["12", "Ohio"]
    assert [a.text for a in anchors("NASA was founded.")] == ["NASA"]


def test_a_value_stated_about_something_else_is_not_held() -> None:
    """A passage holds an anchor only where a content word around the sentence's anchor is
    also near it: a year or a name it states in another context does not count."""
    software = ("NetSupport Manager was first released for DOS only networks in 1989. "
                "It supports thumbnail display of unlimited remote systems. "
                "Version 12 was released in October 2013.")
    assert [a.text for a in missing_anchors("The answer is from 1989 to 2013.", software)] == [
        "1989", "2013"]
    assert missing_anchors("The answer is from 1989 to 2013.",
                           "It ran from 1989 to 2013 on DOS.") == []
    analyst = ("Robert Suettinger was President Bill Clinton's national intelligence officer. "
               "Since leaving the administration, he has been a senior analyst for the "
               "Brookings Institution.")
    assert [a.text for a in missing_anchors("The answer is Bill Brookings.", analyst)] == [
        "Bill", "Brookings"]
    assert missing_anchors("The answer is Bill Clinton.", analyst) == []
    # a common word of a name's stem does not hold it; the same word in lower case does
    career = "He later served as a consultant for the league and its football industry."
    assert [a.text for a in missing_anchors("Jerry Consultancy served the football league.",
                                            career)] == ["Jerry", "Consultancy"]
    assert missing_anchors("He served the football Industry.", career) == []
    assert missing_anchors("Americans served the football league.",
                           "The American served the football league.") == []
    # a sentence whose anchor has no content word around it: held anywhere
    assert missing_anchors("Suettinger.", analyst) == []


def test_the_words_of_one_name_are_held_together() -> None:
    """Each word of "New York Industries" is in the passage, near a word of the sentence,
    but as "Super Cassettes Industries" and "New York City": not that name (the one planted
    figure bench/wrong_figures.py found still supported)."""
    film = ("The film is produced by Bhushan Kumar under the banner of Super Cassettes "
            "Industries Ltd.  The film was extensively shot in Mumbai, New York City and Bangkok.")
    assert [a.text for a in missing_anchors("The film is by New York Industries.", film)] == [
        "York", "Industries"]
    assert missing_anchors("The film was shot in New York City.", film) == []
    assert missing_anchors("The film is by Super Cassettes Industries.", film) == []
    # a middle name or initial between the two words still holds the name
    assert missing_anchors("Barack Obama won the election.",
                           "Barack Hussein Obama won the 2008 election.") == []


def test_conflicts_need_a_different_value_in_a_comparable_context() -> None:
    sentence = "As of the 2010 census, the county population was 9,984."
    other_town = "Elko is a city. As of the 2010 census, the population was 9,312."
    assert find_conflict(sentence, other_town) == Conflict("number", "9,984", "9,312")
    # the same value written differently: no conflict
    assert find_conflict(sentence, "As of the 2010 census, the population was 9984.") is None
    # a different number in another context: no conflict
    assert find_conflict(sentence, "The county was founded in 1838 and has 12 schools.") is None


def test_date_and_name_conflicts() -> None:
    assert find_conflict(
        "Cooking Light is an American magazine founded in 1989.",
        "Cooking Light is an American monthly food magazine founded in 1987.",
    ) == Conflict("date", "1989", "1987")
    assert find_conflict(
        "Vibe is an American music magazine founded by producer Quincy Smith.",
        "Vibe is an American music and entertainment magazine founded by producer Quincy Jones.",
    ) == Conflict("name", "Smith", "Jones")
    # every anchor present: never a conflict, whatever else the passage says
    assert find_conflict("Vibe was founded in 1993.",
                         "Vibe was founded in 1993 and sold in 2006.") is None


def test_conflict_matrix_matches_find_conflict() -> None:
    sentences = ["The county population was 9,984 in 2010.", "No anchors here at all."]
    passages = ["The county population was 9,312 in 2010.", "The county population was 9,984."]
    matrix = conflict_matrix(sentences, passages)
    assert matrix == [[find_conflict(s, p) for p in passages] for s in sentences]
    assert matrix[0][0] == Conflict("number", "9,984", "9,312")
    assert matrix[0][1] is None and matrix[1] == [None, None]
