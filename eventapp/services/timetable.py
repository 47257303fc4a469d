"""Timetable of short talks at a matching session (pure: no database, no Flask).

Two steps:

1. *Which* talks take place. First choices are pinned whenever the organisation has room for
   everybody who ranked it first. The remaining talks are chosen by a min-cost max-flow
   (participant → ranked organisation), so the number of talks is as large as possible given the
   pinned first choices (the promise of a first choice can, rarely, cost someone else a talk — see
   tests); among those, a convex cost per participant (the j-th talk costs more than the (j-1)-th)
   keeps the counts balanced, and a small cost per rank prefers higher-ranked organisations.
2. *When* they take place. Each organisation is split into `org_capacity_per_round` tables;
   every participant and every table then has at most `rounds` talks, so by König's theorem the
   talks can be spread over `rounds` rounds without anybody being double-booked (bipartite edge
   colouring with alternating-path swaps).

Every loop runs over sorted keys, so the same input always gives the same timetable.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

Participant = Hashable
Organisation = Hashable


@dataclass(frozen=True, order=True)
class Meeting:
    round: int          # 1-based
    participant: Participant
    organisation: Organisation
    rank: int           # 1 = first choice
    table: int = 1      # which of the organisation's tables (1-based) when it talks to several at once


@dataclass
class Timetable:
    rounds: int
    meetings: list[Meeting] = field(default_factory=list)

    def by_round(self) -> dict[int, list[Meeting]]:
        result: dict[int, list[Meeting]] = {r: [] for r in range(1, self.rounds + 1)}
        for m in self.meetings:
            result[m.round].append(m)
        return result

    def for_participant(self, participant: Participant) -> list[Meeting]:
        return sorted((m for m in self.meetings if m.participant == participant), key=lambda m: m.round)

    def cell(self, participant: Participant, round_no: int) -> Meeting | None:
        for m in self.meetings:
            if m.participant == participant and m.round == round_no:
                return m
        return None

    def satisfied(self, preferences: Mapping[Participant, Sequence[Organisation]]) -> dict[Participant, int]:
        counts = {p: 0 for p in preferences}
        for m in self.meetings:
            counts[m.participant] = counts.get(m.participant, 0) + 1
        return counts


def clean_preferences(preferences: Mapping[Participant, Sequence[Organisation]]) -> dict:
    """Drop repeated organisations (the first mention counts) and empty lists."""
    cleaned = {}
    for participant, ranked in preferences.items():
        seen: list = []
        for org in ranked:
            if org not in seen:
                seen.append(org)
        cleaned[participant] = seen
    return cleaned


def build_timetable(preferences: Mapping[Participant, Sequence[Organisation]], rounds: int,
                    org_capacity_per_round: int = 1) -> Timetable:
    """Plan `rounds` rounds of talks. `preferences` maps a participant to organisations, best first."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    if org_capacity_per_round < 1:
        raise ValueError("org_capacity_per_round must be at least 1")
    prefs = clean_preferences(preferences)
    participants = sorted(prefs, key=_sort_key)
    orgs = sorted({o for ranked in prefs.values() for o in ranked}, key=_sort_key)
    org_total = rounds * org_capacity_per_round
    rank_of = {(p, o): i + 1 for p in participants for i, o in enumerate(prefs[p])}

    # Step 1a: pin first choices where the organisation can receive every first-chooser.
    first_choosers: dict = defaultdict(list)
    for p in participants:
        if prefs[p]:
            first_choosers[prefs[p][0]].append(p)
    pairs: set = set()
    for org, people in first_choosers.items():
        if len(people) <= org_total:
            pairs.update((p, org) for p in people)

    # Step 1b: the rest by min-cost max-flow.
    pairs |= _choose_more_pairs(prefs, participants, orgs, pairs, rounds, org_total)

    # Step 2: rounds by edge colouring (participant ↔ organisation table).
    per_org: dict = defaultdict(list)
    for p, o in sorted(pairs, key=lambda pair: (_sort_key(pair[1]), rank_of[pair], _sort_key(pair[0]))):
        per_org[o].append(p)
    edges = []
    for o, people in per_org.items():
        for i, p in enumerate(people):
            edges.append((p, (o, i % org_capacity_per_round + 1)))
    colours = _edge_colouring(edges, rounds)
    meetings = [
        Meeting(round=colours[(p, table)] + 1, participant=p, organisation=table[0], rank=rank_of[(p, table[0])],
                table=table[1])
        for p, table in edges
    ]
    meetings.sort(key=lambda m: (m.round, _sort_key(m.participant)))
    return Timetable(rounds=rounds, meetings=meetings)


def validate_timetable(meetings: Sequence[Meeting], preferences: Mapping[Participant, Sequence[Organisation]],
                       rounds: int, org_capacity_per_round: int = 1) -> list[str]:
    """Problems of a (hand-edited) timetable, in Japanese; empty when it is fine."""
    problems: list[str] = []
    prefs = clean_preferences(preferences)
    seen_participant: set = set()
    per_org_round: dict = defaultdict(int)
    seen_pair: set = set()
    for m in meetings:
        if not 1 <= m.round <= rounds:
            problems.append(f"第{m.round}ラウンドは存在しません。")
        if m.organisation not in prefs.get(m.participant, []):
            problems.append(f"参加者 {m.participant} は団体 {m.organisation} を希望していません。")
        if (m.participant, m.round) in seen_participant:
            problems.append(f"参加者 {m.participant} が第{m.round}ラウンドで重複しています。")
        seen_participant.add((m.participant, m.round))
        if (m.participant, m.organisation) in seen_pair:
            problems.append(f"参加者 {m.participant} と団体 {m.organisation} の面談が重複しています。")
        seen_pair.add((m.participant, m.organisation))
        per_org_round[(m.organisation, m.round)] += 1
    for (org, round_no), count in sorted(per_org_round.items(), key=lambda kv: (_sort_key(kv[0][0]), kv[0][1])):
        if count > org_capacity_per_round:
            problems.append(f"団体 {org} は第{round_no}ラウンドで{count}人と面談することになっています"
                            f"(上限{org_capacity_per_round}人)。")
    return problems


def _sort_key(value) -> tuple:
    # Mixed id types (ints from the database, strings in tests) still sort deterministically.
    return (type(value).__name__, value)


def _choose_more_pairs(prefs: dict, participants: list, orgs: list, pinned: set, rounds: int,
                       org_total: int) -> set:
    """Min-cost max-flow on source → participant → organisation → sink."""
    pinned_by_p: dict = defaultdict(int)
    pinned_by_o: dict = defaultdict(int)
    for p, o in pinned:
        pinned_by_p[p] += 1
        pinned_by_o[o] += 1
    max_len = max((len(r) for r in prefs.values()), default=0)
    # A fairness step (moving one talk from a participant with k+2 talks to one with k) saves 2*weight,
    # which must outweigh any change in rank cost (< max_len).
    weight = max_len + 1

    graph = _FlowGraph()
    source, sink = ("s",), ("t",)
    pair_edges = {}
    for p in participants:
        for j in range(pinned_by_p[p] + 1, rounds + 1):
            graph.add(source, ("p", p), 1, weight * (2 * j - 1))
        for i, o in enumerate(prefs[p]):
            if (p, o) not in pinned:
                pair_edges[(p, o)] = graph.add(("p", p), ("o", o), 1, i)
    for o in orgs:
        room = org_total - pinned_by_o[o]
        if room > 0:
            graph.add(("o", o), sink, room, 0)
    graph.min_cost_max_flow(source, sink)
    return {pair for pair, edge in pair_edges.items() if graph.flow(edge) > 0}


class _FlowGraph:
    """Successive shortest paths with Dijkstra and Johnson potentials (all initial costs ≥ 0)."""

    def __init__(self) -> None:
        self.index: dict = {}
        self.adj: list[list[int]] = []
        # Edge arrays; edge e and e^1 are a forward/backward pair.
        self.to: list[int] = []
        self.cap: list[int] = []
        self.cost: list[int] = []

    def _node(self, key) -> int:
        if key not in self.index:
            self.index[key] = len(self.adj)
            self.adj.append([])
        return self.index[key]

    def add(self, u, v, cap: int, cost: int) -> int:
        a, b = self._node(u), self._node(v)
        e = len(self.to)
        self.to += [b, a]
        self.cap += [cap, 0]
        self.cost += [cost, -cost]
        self.adj[a].append(e)
        self.adj[b].append(e + 1)
        return e

    def flow(self, e: int) -> int:
        return self.cap[e ^ 1]

    def min_cost_max_flow(self, source, sink) -> None:
        if source not in self.index or sink not in self.index:
            return
        s, t, n = self.index[source], self.index[sink], len(self.adj)
        potential = [0] * n
        inf = float("inf")
        while True:
            dist = [inf] * n
            prev_edge = [-1] * n
            dist[s] = 0
            heap = [(0, s)]
            while heap:
                d, u = heapq.heappop(heap)
                if d > dist[u]:
                    continue
                for e in self.adj[u]:
                    if self.cap[e] <= 0:
                        continue
                    v = self.to[e]
                    nd = d + self.cost[e] + potential[u] - potential[v]
                    if nd < dist[v]:
                        dist[v] = nd
                        prev_edge[v] = e
                        heapq.heappush(heap, (nd, v))
            if dist[t] == inf:
                return
            for v in range(n):
                if dist[v] < inf:
                    potential[v] += dist[v]
            # Push one unit: every source edge has capacity 1, so paths carry one unit each.
            v = t
            while v != s:
                e = prev_edge[v]
                self.cap[e] -= 1
                self.cap[e ^ 1] += 1
                v = self.to[e ^ 1]


def _edge_colouring(edges: list[tuple], colours: int) -> dict[tuple, int]:
    """Colour the edges of a bipartite graph whose degrees are ≤ `colours` with that many colours."""
    # at[side][vertex][colour] = the other end of the edge with that colour.
    left: dict = defaultdict(dict)
    right: dict = defaultdict(dict)

    def free(side: dict, vertex) -> int:
        used = side[vertex]
        for c in range(colours):
            if c not in used:
                return c
        raise ValueError("degree exceeds the number of rounds")

    for u, v in edges:
        a = free(left, u)
        b = free(right, v)
        if a != b and a in right[v]:
            # Flip the a/b alternating path that starts at v; in a bipartite graph it never reaches u,
            # and afterwards colour a is free at v.
            path = []
            vertex, on_right, colour = v, True, a
            while True:
                side = right if on_right else left
                nxt = side[vertex].get(colour)
                if nxt is None:
                    break
                path.append((vertex, nxt, on_right, colour))
                vertex, on_right, colour = nxt, not on_right, (b if colour == a else a)
            for x, y, x_on_right, colour in path:
                side_x, side_y = (right, left) if x_on_right else (left, right)
                side_x[x].pop(colour, None)
                side_y[y].pop(colour, None)
            for x, y, x_on_right, colour in path:
                other = b if colour == a else a
                side_x, side_y = (right, left) if x_on_right else (left, right)
                side_x[x][other] = y
                side_y[y][other] = x
        left[u][a] = v
        right[v][a] = u
    return {(u, v): c for u, cs in left.items() for c, v in cs.items()}
