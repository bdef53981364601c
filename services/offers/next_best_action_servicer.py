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
from chassis.pagination import Page, read_page_request
from crm.common.v1 import common_pb2
from crm.offers.v1 import next_best_action_pb2 as nba_pb2
from crm.offers.v1 import next_best_action_service_pb2 as service_pb2
from crm.offers.v1 import next_best_action_service_pb2_grpc as service_pb2_grpc
from services.offers import action_mapping, action_rule_changes, action_rule_store, catalog_store
from services.offers.action_decisions import NextBestActionDecider
from services.offers.resource_names import ACTION_RULE, CONTACT_POLICY

Context: TypeAlias = grpc.aio.ServicerContext[Message, Message]
MAX_ACTIONS = 10
DEFAULT_ACTIONS = 3


class NextBestActionServicer(service_pb2_grpc.NextBestActionServiceServicer):
    """The next-best-action decisions' gRPC face."""

    def __init__(self, database: Database, clock: Clock, decider: NextBestActionDecider) -> None:
        self._database = database
        self._clock = clock
        self._decider = decider
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
        if request.channel == common_pb2.CHANNEL_UNSPECIFIED:
            raise invalid_field("channel", "is required: where the actions will be presented")
        if not 0 <= request.max_actions <= MAX_ACTIONS:
            raise invalid_field("max_actions", f"must be between 0 and {MAX_ACTIONS} (0 means {DEFAULT_ACTIONS})")
        channel = action_mapping.channel_text(request.channel)
        picture, decision = await self._decider.decide(
            request.customer, channel, request.max_actions or DEFAULT_ACTIONS
        )
        return action_mapping.decision_to_proto(picture, decision, request.channel, self._clock.now())
