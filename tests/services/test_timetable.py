"""The timetable algorithm: fixed examples and properties checked with Hypothesis."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from eventapp.services.timetable import Meeting, build_timetable, validate_timetable

ORGS = ["かんたはうす", "さともり", "kobiru", "D", "E"]


@st.composite
def scenarios(draw, full_lists: bool = False):
    n_orgs = draw(st.integers(1, 5))
    orgs = list(range(100, 100 + n_orgs))
    n_people = draw(st.integers(0, 12))
    prefs = {}
    for p in range(1, n_people + 1):
        if full_lists:
            prefs[p] = draw(st.permutations(orgs))
        else:
            prefs[p] = draw(st.lists(st.sampled_from(orgs), unique=True, max_size=n_orgs))
    rounds = draw(st.integers(1, 5))
    capacity = draw(st.integers(1, 3))
    return prefs, rounds, capacity


def assert_no_clashes(tt, prefs, rounds, capacity):
    assert validate_timetable(tt.meetings, prefs, rounds, capacity) == []
    per_person_round = Counter((m.participant, m.round) for m in tt.meetings)
    assert max(per_person_round.values(), default=0) <= 1
    per_org_round = Counter((m.organisation, m.round) for m in tt.meetings)
    assert max(per_org_round.values(), default=0) <= capacity


@settings(max_examples=120, deadline=None)
@given(scenarios())
def test_no_clashes_and_only_ranked_organisations(scenario):
    prefs, rounds, capacity = scenario
    tt = build_timetable(prefs, rounds, capacity)
    assert_no_clashes(tt, prefs, rounds, capacity)
    for m in tt.meetings:
        assert m.organisation in prefs[m.participant]
        assert m.rank == list(prefs[m.participant]).index(m.organisation) + 1
        assert 1 <= m.round <= rounds


@settings(max_examples=120, deadline=None)
@given(scenarios())
def test_first_choice_whenever_the_organisation_has_room(scenario):
    prefs, rounds, capacity = scenario
    tt = build_timetable(prefs, rounds, capacity)
    first_choosers = Counter(ranked[0] for ranked in prefs.values() if ranked)
    met = {(m.participant, m.organisation) for m in tt.meetings}
    for p, ranked in prefs.items():
        if ranked and first_choosers[ranked[0]] <= rounds * capacity:
            assert (p, ranked[0]) in met


@settings(max_examples=120, deadline=None)
@given(scenarios())
def test_as_many_talks_as_possible(scenario):
    """Nobody is left with a free round while one of their ranked organisations still has a free seat in it."""
    prefs, rounds, capacity = scenario
    tt = build_timetable(prefs, rounds, capacity)
    met = {(m.participant, m.organisation) for m in tt.meetings}
    load = Counter(m.organisation for m in tt.meetings)
    for p, ranked in prefs.items():
        talks = sum(1 for m in tt.meetings if m.participant == p)
        if talks < rounds:
            for org in ranked:
                # Either already met, or the organisation is fully booked over all rounds.
                assert (p, org) in met or load[org] == rounds * capacity


@settings(max_examples=120, deadline=None)
@given(scenarios(full_lists=True))
def test_fair_when_everyone_ranks_every_organisation(scenario):
    prefs, rounds, capacity = scenario
    tt = build_timetable(prefs, rounds, capacity)
    counts = tt.satisfied(prefs)
    if counts:
        assert max(counts.values()) - min(counts.values()) <= 1


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_deterministic(scenario):
    prefs, rounds, capacity = scenario
    first = build_timetable(prefs, rounds, capacity)
    # The same preferences given in another dict order give the same plan.
    reordered = dict(reversed(list(prefs.items())))
    assert build_timetable(reordered, rounds, capacity).meetings == first.meetings


def test_everybody_meets_everybody_when_rounds_allow():
    prefs = {p: list(ORGS[:3]) for p in ("佐藤", "鈴木", "高橋")}
    tt = build_timetable(prefs, rounds=3)
    assert len(tt.meetings) == 9
    for r, meetings in tt.by_round().items():
        assert sorted(m.organisation for m in meetings) == sorted(ORGS[:3]), r


def test_oversubscribed_organisation_is_shared_fairly():
    # Everyone wants かんたはうす first; it can only see 2 people over 2 rounds.
    prefs = {1: ["かんたはうす", "さともり"], 2: ["かんたはうす", "さともり"], 3: ["かんたはうす", "kobiru"]}
    tt = build_timetable(prefs, rounds=2)
    counts = tt.satisfied(prefs)
    assert sum(1 for m in tt.meetings if m.organisation == "かんたはうす") == 2
    assert max(counts.values()) - min(counts.values()) <= 1
    assert_no_clashes(tt, prefs, 2, 1)


def test_prefers_a_lower_choice_over_an_empty_round():
    # 1 wants A then B, 2 only wants A: with one round, 1 talks to B so both have a talk.
    tt = build_timetable({1: ["A", "B"], 2: ["A"]}, rounds=1)
    assert {(m.participant, m.organisation) for m in tt.meetings} == {(1, "B"), (2, "A")}


def test_validate_reports_hand_edited_clashes():
    prefs = {1: ["A", "B"], 2: ["A"]}
    meetings = [Meeting(1, 1, "A", 1), Meeting(1, 2, "A", 1), Meeting(1, 1, "B", 2), Meeting(3, 2, "C", 1)]
    problems = validate_timetable(meetings, prefs, rounds=2)
    assert any("重複" in p for p in problems)
    assert any("上限1人" in p for p in problems)
    assert any("第3ラウンドは存在しません" in p for p in problems)
    assert any("希望していません" in p for p in problems)


def test_empty_input_and_bad_arguments():
    assert build_timetable({}, rounds=3).meetings == []
    assert build_timetable({1: []}, rounds=3).satisfied({1: []}) == {1: 0}
    import pytest

    with pytest.raises(ValueError):
        build_timetable({1: ["A"]}, rounds=0)


def _max_talks(prefs, rounds, capacity) -> int:
    """Brute force: the largest set of ranked pairs with ≤ rounds per person and ≤ rounds×capacity per
    organisation (by König's theorem exactly the sets that fit into the rounds without clashes) that
    keeps every first choice the organisation has room for (the promise tested above)."""
    from itertools import combinations

    first = Counter(r[0] for r in prefs.values() if r)
    pinned = {(p, r[0]) for p, r in prefs.items() if r and first[r[0]] <= rounds * capacity}
    pairs = [(p, o) for p, ranked in prefs.items() for o in ranked]
    for size in range(len(pairs), 0, -1):
        for chosen in combinations(pairs, size):
            people = Counter(p for p, _ in chosen)
            orgs = Counter(o for _, o in chosen)
            if (max(people.values()) <= rounds and max(orgs.values()) <= rounds * capacity
                    and pinned <= set(chosen)):
                return size
    return 0


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 3).flatmap(lambda n_orgs: st.tuples(
    st.dictionaries(st.integers(1, 4), st.lists(st.sampled_from(list(range(n_orgs))), unique=True, max_size=n_orgs),
                    max_size=4),
    st.integers(1, 2), st.integers(1, 2))))
def test_total_number_of_talks_is_maximal(scenario):
    prefs, rounds, capacity = scenario
    if sum(len(r) for r in prefs.values()) > 10:
        return  # keep the brute force small
    tt = build_timetable(prefs, rounds, capacity)
    assert len(tt.meetings) == _max_talks(prefs, rounds, capacity)


def test_a_first_choice_with_room_is_kept_even_if_another_talk_is_lost():
    # P's first choice A has room for everybody who put it first, so P meets A — even though P taking
    # B instead would let W (whose first choice Y is oversubscribed) meet A. A deliberate rule:
    # people are promised their first choice whenever the organisation can take all who chose it.
    prefs = {"P": ["A", "B"], "W": ["Y", "A"], "V1": ["Y"], "V2": ["Y"]}
    tt = build_timetable(prefs, rounds=1)
    met = {(m.participant, m.organisation) for m in tt.meetings}
    assert ("P", "A") in met and len(met) == 2
