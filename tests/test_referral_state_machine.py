"""Property-based tests of the referral state machine, driven through the real HTTP API.

Hypothesis plays random sequences of requests against one fresh referral per example: any
party (sender, receiver, a stranger) asks for any of the eight statuses with a valid, invalid
or missing reason/outcome and a current, stale or missing If-Match; now and then the
scheduler runs under a moved clock, and now and then the sender withdraws consent. A small
reference model, written here from the diagram in architecture.md and deliberately not
imported from the service, predicts every answer; after every step the API must agree with it.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from referral_hub import clock
from referral_hub.jobs import referral_deadlines

from .referral_fixtures import network, referral_body, send

# The reference model: the diagram of architecture.md, written out by hand.
STATUSES = (
    "sent",
    "received",
    "accepted",
    "declined",
    "in_progress",
    "completed",
    "withdrawn",
    "expired",
)
TERMINAL = {"declined", "completed", "withdrawn", "expired"}
UNANSWERED = {"sent", "received"}
# (from, to) -> the party that may ask for it
REQUEST_EDGES = {
    ("sent", "received"): "receiver",
    ("received", "accepted"): "receiver",
    ("received", "declined"): "receiver",
    ("accepted", "in_progress"): "receiver",
    ("in_progress", "completed"): "receiver",
    ("sent", "withdrawn"): "sender",
    ("received", "withdrawn"): "sender",
    ("accepted", "withdrawn"): "sender",
    ("in_progress", "withdrawn"): "sender",
}
SCHEDULER_EDGES = {("sent", "expired"), ("received", "expired")}
DIAGRAM = set(REQUEST_EDGES) | SCHEDULER_EDGES
DECLINE_REASONS = ("no_capacity", "not_eligible", "out_of_area", "could_not_contact", "other")
OUTCOMES = (
    "service_provided",
    "partially_provided",
    "no_longer_needed",
    "could_not_contact",
    "referred_elsewhere",
)
PARTIES = ("sender", "receiver", "stranger")
MISSING = "(missing)"
# Where an example starts exploring, and how the referral gets there: (who, what) steps, each
# checked like any other. Every state, terminal ones too, is a start in one example out of eight.
HEAD_STARTS = {
    "sent": (),
    "received": (("receiver", "received"),),
    "accepted": (("receiver", "received"), ("receiver", "accepted")),
    "in_progress": (
        ("receiver", "received"),
        ("receiver", "accepted"),
        ("receiver", "in_progress"),
    ),
    "declined": (("receiver", "received"), ("receiver", "declined")),
    "completed": (
        ("receiver", "received"),
        ("receiver", "accepted"),
        ("receiver", "in_progress"),
        ("receiver", "completed"),
    ),
    "withdrawn": (("sender", "withdrawn"),),
    "expired": (("scheduler", "45 days"),),
}
FLAWS = (
    "wrong party",
    "stale",
    "missing",
    "blank reason",
    "unknown outcome",
    "decline without a known reason",
    "completion without outcome",
)

# How far the scheduler's clock moves: before any deadline, past every deadline, long past
# every deadline (expiry), past the consent's end (referral_body's consent runs 180 days).
CLOCK_MOVES = {
    "an hour": timedelta(hours=1),
    "eight days": timedelta(days=8),
    "45 days": timedelta(days=45),
    "200 days": timedelta(days=200),
}


@dataclass
class Model:
    status: str = "sent"
    version: int = 1
    overdue: bool = False
    consent: str = "active"
    erased: bool = False
    # every status change so far: (from, to, who)
    changes: list = field(default_factory=list)

    def allowed(self, party):
        return sorted(
            to for (frm, to), who in REQUEST_EDGES.items() if frm == self.status and who == party
        )

    def edges_from_here(self):
        return sorted((to, who) for (frm, to), who in REQUEST_EDGES.items() if frm == self.status)

    def move(self, to, who):
        assert self.status not in TERMINAL
        self.changes.append((self.status, to, who))
        self.status = to
        self.version += 1


def _time(value):
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class ReferralLifecycle(RuleBasedStateMachine):
    """One referral per example; `client`, `net` and `app` are set by the test."""

    client = net = app = None

    def _get(self, party, suffix=""):
        response = self.client.get(
            f"/api/v1/referrals/{self.id}{suffix}", headers=self.net[party].headers
        )
        assert response.status_code == 200, (party, suffix, response.get_json())
        return response

    def _assert_unchanged(self, before, context):
        body = self._get("sender").get_json()
        assert (body["status"], body["version"]) == before, (
            context,
            body["status"],
            body["version"],
        )

    @initialize(
        urgency=st.sampled_from(("emergency", "high", "normal")),
        head_start=st.sampled_from(sorted(HEAD_STARTS)),
    )
    def send_a_referral(self, urgency, head_start):
        """A new referral, taken along the diagram to the state this example starts from."""
        response = send(
            self.client, self.net["sender"], referral_body(self.net["service"].id, urgency=urgency)
        )
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        assert (body["status"], body["version"]) == ("sent", 1)
        self.id = body["id"]
        self.deadline = _time(body["deadline_at"])
        self.consent_ends = _time(body["consent"]["expires_at"])
        self.model = Model()
        self.terminal_seen = None
        for who, what in HEAD_STARTS[head_start]:
            if who == "scheduler":
                self.run_the_scheduler(what)
            else:
                reason = "not_eligible" if what == "declined" else MISSING
                outcome = "service_provided" if what == "completed" else MISSING
                self._ask(who, what, reason, outcome, "current")
        assert self.model.status == head_start

    # Four ways to ask for a status; the model alone judges every answer (see _ask).

    @precondition(lambda self: self.model.status not in TERMINAL)
    @rule(data=st.data())
    def move_along_the_diagram(self, data):
        """A well-formed request by the right party for an edge of the diagram: it must succeed."""
        target, party = data.draw(self._edge(), label="edge")
        reason, outcome = MISSING, MISSING
        if target == "declined":
            reason = data.draw(st.sampled_from(DECLINE_REASONS), label="reason")
        elif data.draw(st.booleans(), label="with a note"):
            reason = "the family asked for it"
        if target == "completed":
            outcome = data.draw(st.sampled_from(OUTCOMES), label="outcome")
        self._ask(party, target, reason, outcome, "current")

    @precondition(lambda self: self.model.status not in TERMINAL)
    @rule(data=st.data())
    def move_along_the_diagram_with_one_flaw(self, data):
        """An edge of the diagram asked for with exactly one thing wrong: it must be refused."""
        target, party = data.draw(self._edge(), label="edge")
        reason = data.draw(st.sampled_from(DECLINE_REASONS)) if target == "declined" else MISSING
        outcome = data.draw(st.sampled_from(OUTCOMES)) if target == "completed" else MISSING
        version = "current"
        flaw = data.draw(st.sampled_from(FLAWS), label="flaw")
        if flaw == "wrong party":
            party = data.draw(st.sampled_from([p for p in PARTIES if p != party]), label="party")
        elif flaw in ("stale", "missing"):
            version = flaw
        elif flaw == "blank reason":
            reason = ""
        elif flaw == "unknown outcome":
            outcome = "done"
        elif flaw == "decline without a known reason":
            target, party = "declined", "receiver"
            reason = data.draw(st.sampled_from((MISSING, "the family moved away")), label="reason")
        elif flaw == "completion without outcome":
            target, party, outcome = "completed", "receiver", MISSING
        self._ask(party, target, reason, outcome, version)

    @rule(data=st.data())
    def ask_for_a_move_the_diagram_forbids(self, data):
        """Well-formed, current version, by a party of the referral, but no edge for that party."""
        party = data.draw(st.sampled_from(("sender", "receiver")), label="party")
        forbidden = [s for s in STATUSES if s not in self.model.allowed(party)]
        status = data.draw(st.sampled_from(forbidden), label="status")
        self._ask(party, status, "other", "service_provided", "current")

    @rule(
        party=st.sampled_from(PARTIES),
        status=st.sampled_from(STATUSES),
        reason=st.one_of(
            st.just(MISSING),
            st.sampled_from(DECLINE_REASONS),
            st.just("the family moved away"),
            st.just(""),
        ),
        outcome=st.one_of(st.just(MISSING), st.sampled_from(OUTCOMES), st.just("done")),
        version=st.sampled_from(("current", "stale", "missing")),
    )
    def ask_for_anything(self, party, status, reason, outcome, version):
        """Any party, any of the eight statuses, any reason, outcome and version."""
        self._ask(party, status, reason, outcome, version)

    def _edge(self):
        """One of the edges leaving the current state, as (to, party)."""
        return st.sampled_from(self.model.edges_from_here())

    def _ask(self, party, target, reason, outcome, version):
        model = self.model
        refusals = set()  # every answer the model accepts for a refused request
        if reason == "" or outcome == "done":
            refusals.add(422)  # malformed input, refused whoever asks
        if party == "stranger":
            refusals.add(404)  # a stranger must not learn the referral exists
        else:
            if version == "missing":
                refusals.add(428)
            if version == "stale":
                refusals.add(412)
            if REQUEST_EDGES.get((model.status, target)) != party:
                refusals.add(409)
            if target == "declined" and reason not in DECLINE_REASONS:
                refusals.add(422)
            if target == "completed" and outcome == MISSING:
                refusals.add(422)

        body = {"status": target}
        if reason != MISSING:
            body["reason"] = reason
        if outcome != MISSING:
            body["outcome"] = outcome
        headers = dict(self.net[party].headers)
        if version == "current":
            headers["If-Match"] = f'"{model.version}"'
        elif version == "stale":
            # an older version, or at version 1 one the referral has not reached
            stale = model.version - 1 if model.version > 1 else model.version + 1
            headers["If-Match"] = f'"{stale}"'
        response = self.client.post(
            f"/api/v1/referrals/{self.id}/status", json=body, headers=headers
        )
        answer = response.get_json()
        context = (party, model.status, body, version, response.status_code, answer)
        before = (model.status, model.version)

        if not refusals:
            assert response.status_code == 200, context
            assert answer["status"] == target, context
            assert answer["version"] == model.version + 1, context
            assert response.headers["ETag"] == f'"{model.version + 1}"', context
            model.move(target, party)
            return
        assert response.status_code in refusals, (sorted(refusals), context)
        if response.status_code == 409:
            assert answer["allowed"] == model.allowed(party), context
        self._assert_unchanged(before, context)

    @rule(when=st.sampled_from(sorted(CLOCK_MOVES)))
    def run_the_scheduler(self, when):
        """The deadlines job under a moved clock: flags overdue, expires, ends consent."""
        moment = datetime.now(UTC) + CLOCK_MOVES[when]
        clock.freeze(moment)
        try:
            referral_deadlines()
        finally:
            clock.freeze(None)
        model = self.model
        if model.status in UNANSWERED:
            if not model.overdue and self.deadline <= moment:
                model.overdue = True  # flagged and escalated: a change, a new version
                model.version += 1
            expiry = timedelta(days=self.app.config["REFERRAL_EXPIRY_DAYS"])
            if self.deadline <= moment - expiry:
                model.move("expired", "scheduler")
        if model.consent == "active" and self.consent_ends <= moment:
            model.consent = "expired"
            model.version += 1

    @rule(party=st.sampled_from(PARTIES), erase=st.booleans())
    def withdraw_consent(self, party, erase):
        """Only the sender records it; the status never moves, the version does."""
        model = self.model
        response = self.client.post(
            f"/api/v1/referrals/{self.id}/consent/withdraw",
            json={"erase": erase},
            headers=self.net[party].headers,
        )
        context = (
            party,
            erase,
            model.consent,
            model.erased,
            response.status_code,
            response.get_json(),
        )
        before = (model.status, model.version)
        if party == "stranger":
            assert response.status_code == 404, context
        elif party == "receiver":
            assert response.status_code == 403, context
        elif model.consent == "withdrawn" and (model.erased or not erase):
            assert response.status_code == 409, context
        else:
            assert response.status_code == 200, context
            answer = response.get_json()
            assert answer["status"] == model.status, context
            assert answer["version"] == model.version + 1, context
            assert answer["consent"]["status"] == "withdrawn", context
            model.consent, model.erased = "withdrawn", model.erased or erase
            model.version += 1
            return
        self._assert_unchanged(before, context)

    @invariant()
    def the_api_agrees_with_the_model(self):
        """Both parties see the model's status, version and consent; terminal states stay."""
        for party in ("sender", "receiver"):
            response = self._get(party)
            body = response.get_json()
            assert body["status"] in STATUSES, body["status"]
            assert body["status"] == self.model.status, (party, body["status"], self.model)
            assert body["version"] == self.model.version, (party, body["version"], self.model)
            assert response.headers["ETag"] == f'"{self.model.version}"'
            assert body["consent"]["status"] == self.model.consent, (
                party,
                body["consent"],
                self.model,
            )
            if self.terminal_seen:
                assert body["status"] == self.terminal_seen, "a terminal state changed"
        if self.model.status in TERMINAL:
            self.terminal_seen = self.model.status

    @invariant()
    def the_events_walk_the_diagram(self):
        """One event per version; every status change an edge of the diagram, by its party."""
        events = self._get("sender", "/events").get_json()["items"]
        organizations = {
            "sender": self.net["sender"].organization_id,
            "receiver": self.net["receiver"].organization_id,
            "scheduler": None,
        }
        assert events[0]["type"] == "referral.created"
        assert (events[0]["from_status"], events[0]["to_status"]) == (None, "sent")
        status, changes = "sent", []
        for number, event in enumerate(events, start=1):
            # every version of the referral is one event, in order
            assert event["version"] == number, events
            if number == 1:
                continue
            assert event["from_status"] == status, events
            if event["type"] == "referral.status_changed":
                edge = (event["from_status"], event["to_status"])
                assert edge in DIAGRAM, f"{edge} is not an edge of the diagram"
                assert status not in TERMINAL, f"{status} is terminal but became {edge[1]}"
                who = REQUEST_EDGES.get(edge, "scheduler")
                assert event["organization_id"] == organizations[who], (edge, event)
                changes.append((*edge, who))
            else:
                assert event["to_status"] == event["from_status"], event
            status = event["to_status"]
        assert status == self.model.status
        assert events[-1]["version"] == self.model.version
        assert changes == self.model.changes


SETTINGS = settings(
    max_examples=40,
    stateful_step_count=10,
    deadline=None,
    database=None,  # leave no .hypothesis folder in the repository
    # No shrinking: every example is dozens of HTTP requests, and shrinking a failure takes
    # Hypothesis over five minutes. The failing sequence is printed step by step as it ran;
    # add Phase.shrink here while debugging to get it minimal.
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)


def test_no_sequence_of_requests_leaves_the_diagram(app, client):
    """The parties are made once; each example sends its own referral between them."""
    machine = type(
        "Lifecycle",
        (ReferralLifecycle,),
        {"app": app, "client": client, "net": network(app, client)},
    )
    run_state_machine_as_test(machine, settings=SETTINGS)
