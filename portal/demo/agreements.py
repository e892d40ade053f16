"""The demo's agreements and customer requests, written once the history is lived."""
from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import date, timedelta

from portal.demo.common import DEMO_CUSTOMER_EMAIL, DEMO_CUSTOMER_PASSWORD, CustomerPlan, at_hour
from portal.domain.actors import Actor
from portal.models import (
    AcceptanceMethod,
    ActorType,
    Agreement,
    AgreementAcceptance,
    AgreementState,
    AgreementType,
    CustomerRequest,
    RequestComment,
    RequestState,
    ServiceState,
)


class PaperworkStory:
    """Agreements (one per customer, annexes for the demo customer, numbered in order of
    conclusion), a few customer requests, and the demo customer's selfcare login."""

    # -------------------------------------------------------------- agreements and requests

    def _agreements(self) -> None:
        """One service agreement per customer (accepted, or issued and awaiting acceptance
        for customers whose services have not started), numbered per type and year in the
        order of conclusion; the demo customer also has annexes."""
        from portal.domain.numbering import format_number, reserve_numbers

        drafts: list[tuple[date, int, AgreementType, Agreement]] = []
        for cp in self.plans:
            services = [p for p in cp.services if p.first_service is not None and p.code != "INSTALL"]
            if not services:
                continue
            concluded = min(p.ordered_on for p in services)
            started = any(p.activated_on and p.activated_on <= self.today for p in services)
            if cp.index == 0:
                covered = [p.first_service for p in services if p.code in ("NET300", "ROUTER", "TVPLUS", "TVNEWS",
                                                                            "VOICEFLEX")]
            else:
                covered = [p.first_service for p in services if p.ordered_on == concluded] or [services[0].first_service]
                covered += [p.service for p in services if p.service is not p.first_service]
            agreement = Agreement(type=self.agreement_type, customer=cp.customer, conclusion_date=concluded,
                                  valid_from=concluded, customer_services=covered)
            if started and not (cp.index != 0 and concluded > self.today - timedelta(days=7)):
                self._accept(agreement, concluded + timedelta(days=self.rng.randint(0, 3)))
            else:
                agreement.state = AgreementState.ISSUED
            agreement.issued_at = at_hour(concluded, 9, 30)
            drafts.append((concluded, cp.index, self.agreement_type, agreement))

        demo = self.plans[0]
        by_code = {p.code: p for p in demo.services}
        net = by_code["NET300"]
        main = next(a for _, i, _, a in drafts if i == 0)
        change = Agreement(type=self.annex_type, customer=demo.customer, parent=main,
                           conclusion_date=net.change_on - timedelta(days=4), valid_from=net.change_on,
                           customer_services=[net.service],
                           summary=f"Change of Internet 300 Mbit/s to Internet 500 Mbit/s from "
                                   f"{net.change_on:%d.%m.%Y}; 24-month commitment; loyalty discount 10 % "
                                   f"for 12 months.")
        change.issued_at = at_hour(change.conclusion_date, 9, 0)
        self._accept(change, change.conclusion_date + timedelta(days=1))
        ip = by_code["PUBLICIP"]
        pending = Agreement(type=self.annex_type, customer=demo.customer, parent=main, conclusion_date=ip.ordered_on,
                            valid_from=ip.activated_on, customer_services=[ip.service],
                            summary="Public IPv4 address for the home connection, 99 CZK a month, notice 30 days.",
                            state=AgreementState.ISSUED)
        pending.issued_at = at_hour(ip.ordered_on, 14, 5)
        drafts += [(change.conclusion_date, 0, self.annex_type, change), (ip.ordered_on, 0, self.annex_type, pending)]

        drafts.sort(key=lambda d: (d[2].code, d[0], d[1]))
        by_scope: dict[tuple[int, int], list[Agreement]] = defaultdict(list)
        for concluded, _, atype, agreement in drafts:
            by_scope[(atype.id, concluded.year)].append(agreement)
        for (type_id, year), agreements in sorted(by_scope.items()):
            atype = self.agreement_type if type_id == self.agreement_type.id else self.annex_type
            numbers = reserve_numbers(self.s, self._agreement_scope(atype), year, len(agreements))
            for seq, agreement in zip(numbers, agreements, strict=True):
                agreement.sequence = seq
                agreement.number = format_number(atype.number_format, year=year, seq=seq)
                self.s.add(agreement)
        self.s.flush()

    def _agreement_scope(self, atype: AgreementType) -> str:
        try:
            from portal.domain import agreements
        except ImportError:
            agreements = None
        scope_of = getattr(agreements, "numbering_scope", None)
        if scope_of is not None:
            return scope_of(atype)
        return f"agreement:{atype.id}"

    def _accept(self, agreement: Agreement, on: date) -> None:
        agreement.state = AgreementState.ACCEPTED
        agreement.accepted_at = at_hour(on, 15, self.rng.randint(0, 59))
        # Signed on paper at the branch, recorded by staff; the hash is of the signed text.
        agreement.acceptances.append(AgreementAcceptance(
            operator_id=self.operator.id, at=agreement.accepted_at, method=AcceptanceMethod.STAFF,
            document_sha256=hashlib.sha256(f"{agreement.customer.customer_number}:{on}".encode()).hexdigest(),
        ))

    def _requests(self) -> None:
        from portal.domain.customer_requests import create_request

        def as_customer(cp: CustomerPlan) -> Actor:
            return Actor(ActorType.CUSTOMER, cp.customer.id, cp.customer.display_name)

        def staff_comment(request: CustomerRequest, body: str, internal: bool) -> None:
            self.s.add(RequestComment(request_id=request.id, author_type=ActorType.OPERATOR,
                                      author_id=self.operator.id, author_name=self.operator.name, body=body,
                                      internal=internal))

        demo = self.plans[0]
        voice = next(p for p in demo.services if p.code == "VOICEFLEX")
        r1 = create_request(self.s, demo.customer, as_customer(demo), kind="question",
                            subject="Phone charges on my last invoice",
                            message="Hello, my last invoice has more call minutes than I remember making. "
                                    "Could you send me the list of calls, please?",
                            service=voice.service)
        staff_comment(r1, "Dear Ms Dvořáková, the minutes are totals of the daily readings of your line. "
                          "We have sent the list of calls to your e-mail; please tell us which calls you do "
                          "not recognise.", internal=False)
        staff_comment(r1, "Readings look normal (daily 0–15 min). If she disputes specific calls, check "
                          "with the voice platform before crediting anything.", internal=True)
        r1.state, r1.assignee_id = RequestState.WAITING_FOR_CUSTOMER, self.operator.id

        unmatched = next((cp for cp in self.plans if cp.unmatched == "missing_vs"), None)
        if unmatched is not None:
            r2 = create_request(self.s, unmatched.customer, as_customer(unmatched), kind="complaint",
                                subject="I paid, but got a payment reminder",
                                message="I paid last month's invoice on time by bank transfer, yet the portal "
                                        "says it is overdue. Please check.")
            staff_comment(r2, "Thank you, we are looking for your payment and will get back to you.", internal=False)
            staff_comment(r2, "The payment came without a variable symbol: it is in the unmatched queue "
                              "under the customer's name. Pair it and waive the reminder fee.", internal=True)
            r2.state, r2.assignee_id = RequestState.IN_PROGRESS, self.operator.id

        candidate = next((cp for cp in self.plans[1:] for p in cp.services
                          if p.service is not None and p.service.state == ServiceState.ACTIVE
                          and p.service.definition.code == "NET100"), None)
        if candidate is not None:
            service = next(p.service for p in candidate.services if p.service is not None
                           and p.service.state == ServiceState.ACTIVE and p.service.definition.code == "NET100")
            create_request(self.s, candidate.customer, as_customer(candidate), kind="plan_change",
                           subject="Faster internet", service=service,
                           target_definition_id=self.defs["NET300"].id,
                           message="We work from home now; could we get 300 Mbit from next month?")
        from portal.domain.accounts import create_customer_login

        create_customer_login(self.s, demo.customer, DEMO_CUSTOMER_EMAIL, DEMO_CUSTOMER_PASSWORD, self.actor)
        self.s.flush()
