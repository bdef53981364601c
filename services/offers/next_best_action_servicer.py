"""`crm.offers.v1.NextBestActionService` over gRPC: maps messages to the next-best-action use cases
and back. Every mutation runs once per request id, in one transaction with the stored answer."""

from typing import TypeAlias

import grpc
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import Clock
from chassis.database import Database
from chassis.errors import invalid_field
from chassis.etags import version_from_etag
from chassis.idempotency import IdempotentRunner
from chassis.names import CUSTOMER
from chassis.pagination import Page, read_page_request
from chassis.wellknown import timestamp_from_proto
from crm.common.v1 import common_pb2
from crm.offers.v1 import next_best_action_pb2 as nba_pb2
from crm.offers.v1 import next_best_action_service_pb2 as service_pb2
from crm.offers.v1 import next_best_action_service_pb2_grpc as service_pb2_grpc
from crm.offers.v1 import offer_presentation_pb2 as presentation_pb2
from services.offers import (
    action_mapping,
    action_rule_changes,
    action_rule_store,
    catalog_store,
    offer_presentation_store,
    offer_presentations,
)
from services.offers.action_decisions import NextBestActionDecider
from services.offers.offer_lifecycle import OfferState
from services.offers.offer_presentations import OfferPresentations
from services.offers.resource_names import ACTION_RULE, CONTACT_POLICY, OFFER_PRESENTATION

Context: TypeAlias = grpc.aio.ServicerContext[Message, Message]
MAX_ACTIONS = 10
DEFAULT_ACTIONS = 3


class NextBestActionServicer(service_pb2_grpc.NextBestActionServiceServicer):
    """The next-best-action decisions' gRPC face."""

    def __init__(
        self, database: Database, clock: Clock, decider: NextBestActionDecider, presentations: OfferPresentations
    ) -> None:
        self._database = database
        self._clock = clock
        self._decider = decider
        self._presentations = presentations
        self._once = IdempotentRunner(database, catalog_store.idempotency_keys)

    async def CreateActionRule(
        self, request: service_pb2.CreateActionRuleRequest, context: Context
    ) -> nba_pb2.ActionRule:
        rule = action_mapping.rule_from_proto(request.action_rule, request.action_rule_id)

        async def create(session: AsyncSession) -> nba_pb2.ActionRule:
            created = await action_rule_changes.create_rule(session, rule, self._clock.now())
            return action_mapping.rule_to_proto(created)

        return await self._once.run(request, nba_pb2.ActionRule, create)

    async def GetActionRule(self, request: service_pb2.GetActionRuleRequest, context: Context) -> nba_pb2.ActionRule:
        rule_id = ACTION_RULE.parse_slug(request.name)
        async with self._database.transaction() as session:
            return action_mapping.rule_to_proto(await action_rule_changes.get_rule(session, rule_id))

    async def ListActionRules(
        self, request: service_pb2.ListActionRulesRequest, context: Context
    ) -> service_pb2.ListActionRulesResponse:
        page = read_page_request(request.page_size, request.page_token, {})
        async with self._database.transaction() as session:
            rows = await action_rule_store.list_rules(session, page)
        result = Page.cut(rows, page, lambda rule: [rule.rule_id], {})
        return service_pb2.ListActionRulesResponse(
            action_rules=[action_mapping.rule_to_proto(rule) for rule in result.items],
            next_page_token=result.next_page_token,
        )

    async def UpdateActionRule(
        self, request: service_pb2.UpdateActionRuleRequest, context: Context
    ) -> nba_pb2.ActionRule:
        rule_id = ACTION_RULE.parse_slug(request.action_rule.name, "action_rule.name")
        expected = version_from_etag(request.action_rule.etag, "action_rule.etag")
        paths = list(request.update_mask.paths)

        async def update(session: AsyncSession) -> nba_pb2.ActionRule:
            current = await action_rule_changes.locked_rule(session, rule_id)
            patch = action_mapping.rule_patch_from_proto(request.action_rule, request.update_mask, current)
            updated = await action_rule_changes.update_rule(session, current, patch, paths, expected, self._clock.now())
            return action_mapping.rule_to_proto(updated)

        return await self._once.run(request, nba_pb2.ActionRule, update)

    async def GetContactPolicy(
        self, request: service_pb2.GetContactPolicyRequest, context: Context
    ) -> nba_pb2.ContactPolicy:
        CONTACT_POLICY.parse(request.name)
        async with self._database.transaction() as session:
            return action_mapping.policy_to_proto(await action_rule_store.contact_policy(session))

    async def UpdateContactPolicy(
        self, request: service_pb2.UpdateContactPolicyRequest, context: Context
    ) -> nba_pb2.ContactPolicy:
        expected = version_from_etag(request.contact_policy.etag, "contact_policy.etag")
        patch = action_mapping.policy_from_proto(request.contact_policy)
        paths = list(request.update_mask.paths)

        async def update(session: AsyncSession) -> nba_pb2.ContactPolicy:
            updated = await action_rule_changes.update_policy(session, patch, paths, expected, self._clock.now())
            return action_mapping.policy_to_proto(updated)

        return await self._once.run(request, nba_pb2.ContactPolicy, update)

    async def GetNextBestActions(
        self, request: service_pb2.GetNextBestActionsRequest, context: Context
    ) -> nba_pb2.NextBestActions:
        channel = _required_channel(request.channel)
        if not 0 <= request.max_actions <= MAX_ACTIONS:
            raise invalid_field("max_actions", f"must be between 0 and {MAX_ACTIONS} (0 means {DEFAULT_ACTIONS})")
        picture, decision = await self._decider.decide(
            request.customer, channel, request.max_actions or DEFAULT_ACTIONS
        )
        return action_mapping.decision_to_proto(picture, decision, request.channel, self._clock.now())

    async def PresentOffer(
        self, request: service_pb2.PresentOfferRequest, context: Context
    ) -> presentation_pb2.OfferPresentation:
        channel = _required_channel(request.channel)
        earlier = await self._presentations.earlier_answer(request)
        if earlier is not None:
            return earlier
        presentation = await self._presentations.decided_presentation(request.customer, request.rule, channel)

        async def present(session: AsyncSession) -> presentation_pb2.OfferPresentation:
            recorded = await offer_presentations.record_presentation(session, presentation, self._clock.now())
            return action_mapping.presentation_to_proto(recorded)

        return await self._once.run(request, presentation_pb2.OfferPresentation, present)

    async def GetOfferPresentation(
        self, request: service_pb2.GetOfferPresentationRequest, context: Context
    ) -> presentation_pb2.OfferPresentation:
        async with self._database.transaction() as session:
            presentation = await offer_presentations.get_presentation(session, request.name)
        return action_mapping.presentation_to_proto(presentation)

    async def ListOfferPresentations(
        self, request: service_pb2.ListOfferPresentationsRequest, context: Context
    ) -> service_pb2.ListOfferPresentationsResponse:
        customer_id = CUSTOMER.parse_uuid(request.customer, "customer")
        criteria: dict[str, str | int | bool | None] = {"customer": request.customer}
        page = read_page_request(request.page_size, request.page_token, criteria)
        async with self._database.transaction() as session:
            rows = await offer_presentation_store.list_presentations(session, customer_id, page)
        result = Page.cut(rows, page, lambda p: [p.present_time.isoformat(), str(p.id)], criteria)
        return service_pb2.ListOfferPresentationsResponse(
            offer_presentations=[action_mapping.presentation_to_proto(p) for p in result.items],
            next_page_token=result.next_page_token,
        )

    async def AcceptOffer(
        self, request: service_pb2.AcceptOfferRequest, context: Context
    ) -> presentation_pb2.OfferPresentation:
        return await self._answer(request, OfferState.ACCEPTED)

    async def DeclineOffer(
        self, request: service_pb2.DeclineOfferRequest, context: Context
    ) -> presentation_pb2.OfferPresentation:
        return await self._answer(request, OfferState.DECLINED)

    async def GetOfferKpis(
        self, request: service_pb2.GetOfferKpisRequest, context: Context
    ) -> presentation_pb2.OfferKpis:
        if not request.HasField("start_time"):
            raise invalid_field("start_time", "is required")
        if not request.HasField("end_time"):
            raise invalid_field("end_time", "is required")
        return await self._presentations.kpis(
            timestamp_from_proto(request.start_time), timestamp_from_proto(request.end_time)
        )

    async def _answer(
        self, request: service_pb2.AcceptOfferRequest | service_pb2.DeclineOfferRequest, state: OfferState
    ) -> presentation_pb2.OfferPresentation:
        OFFER_PRESENTATION.parse_uuid(request.name)
        channel = _required_channel(request.channel)
        expected = version_from_etag(request.etag)

        async def answer(session: AsyncSession) -> presentation_pb2.OfferPresentation:
            answered = await offer_presentations.answer_offer(
                session, request.name, state, channel, expected, self._clock.now()
            )
            return action_mapping.presentation_to_proto(answered)

        return await self._once.run(request, presentation_pb2.OfferPresentation, answer)


def _required_channel(channel: common_pb2.Channel) -> str:
    if channel == common_pb2.CHANNEL_UNSPECIFIED:
        raise invalid_field("channel", "is required: where the customer was reached")
    return action_mapping.channel_text(channel)
