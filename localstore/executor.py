"""GraphQL execution of the local store: parse → validate against the pinned Admin schema → cost check → execute.

Errors look like Shopify's: HTTP 200 with `{"errors": [{"message", "locations", "path", "extensions": {"code"}}]}`.
Parsed and validated documents are kept in an LRU keyed by the document text, so repeated queries (the gateway sends
the same few documents over and over) skip parsing and validation.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    execute,
    parse,
    validate,
)

from gateway.shopify.queries import SCHEMA_PATH
from localstore.cost import Bucket, CostCalculator, CostPlan
from localstore.resolvers import RequestContext, resolve_field, resolve_type


@functools.cache
def admin_schema() -> GraphQLSchema:
    """The Admin API 2026-10 schema (building it takes ~2 s: once per process)."""
    return build_schema(SCHEMA_PATH.read_text(encoding="utf-8"), assume_valid_sdl=True)


def _error_code(message: str) -> str:
    if message.startswith("Cannot query field"):
        return "undefinedField"
    if message.startswith("Unknown argument"):
        return "argumentNotAccepted"
    if "Syntax Error" in message:
        return "parseError"
    if message.startswith("Variable"):
        return "variableMismatch"
    if "required" in message:
        return "missingRequiredArguments"
    return "GRAPHQL_VALIDATION_FAILED"


def format_error(error: GraphQLError, default_code: str | None = None) -> dict[str, Any]:
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        formatted["path"] = list(error.path)
    extensions = dict(error.extensions or {})
    if "code" not in extensions:
        extensions["code"] = default_code or _error_code(error.message)
    formatted["extensions"] = extensions
    return formatted


@dataclass
class Prepared:
    document: DocumentNode | None
    errors: list[dict[str, Any]]
    #: cost plans by (operation name, the integer variables that size lists)
    plans: dict[tuple[Any, ...], CostPlan] = field(default_factory=dict)


def _never_awaitable(value: Any) -> bool:
    return False  # every resolver is synchronous: spare graphql-core its per-value inspection


class GraphQLRunner:
    """Runs documents for one server; holds the document cache and the optional response cache.

    The response cache (off unless `response_cache_size` > 0) answers a repeated query from memory while its shop's
    `version` is unchanged: every change made through SandboxShop bumps it; direct edits of records need
    `shop.touch()`. The cost bucket is charged as if the query ran.
    """

    def __init__(self, cache_size: int = 1024, response_cache_size: int = 0) -> None:
        self.schema = admin_schema()
        self._prepared: LRUCache[str, Prepared] = LRUCache(maxsize=cache_size)
        self.responses: LRUCache[tuple[Any, ...], tuple[dict[str, Any], int]] | None = (
            LRUCache(maxsize=response_cache_size) if response_cache_size > 0 else None)

    def prepare(self, text: str) -> Prepared:
        cached = self._prepared.get(text)
        if cached is not None:
            return cached
        try:
            document = parse(text)
        except GraphQLError as err:
            prepared = Prepared(None, [format_error(err, "parseError")])
        else:
            problems = validate(self.schema, document)
            prepared = Prepared(None, [format_error(e) for e in problems]) if problems else Prepared(document, [])
        self._prepared[text] = prepared
        return prepared

    def run(self, text: str, variables: dict[str, Any] | None, operation_name: str | None,
            context: RequestContext, bucket: Bucket, max_cost: int) -> dict[str, Any]:
        """The response body for one request (always JSON for HTTP 200), charged and refunded at once."""
        started = self.start(text, variables, operation_name, context, bucket, max_cost)
        return started if isinstance(started, dict) else self.finish(started)

    def start(self, text: str, variables: dict[str, Any] | None, operation_name: str | None,
              context: RequestContext, bucket: Bucket, max_cost: int, *, throttle: bool = False
              ) -> Started | dict[str, Any]:
        """Price the query and take its requested cost from the bucket: a `Started` query (the cost stays taken until
        `finish`), or the body of an answer that ran nothing (invalid, over the max cost, THROTTLED — also when
        `throttle` forces it, as the `throttle_next` fault does)."""
        prepared = self.prepare(text)
        if prepared.document is None:
            return {"errors": prepared.errors}
        operation = _pick_operation(prepared.document, operation_name)
        if operation is None:
            return {"errors": [{"message": "An operation name is required when a document holds several operations.",
                                "extensions": {"code": "OPERATION_NAME_REQUIRED"}}]}
        variables = variables or {}
        # what sizes the plan: page sizes (ints) and the length of id lists (`nodes(ids:)` is priced per id)
        sizes = {k: len(v) if isinstance(v, list) else v for k, v in variables.items()
                 if type(v) is int or isinstance(v, list)}
        plan_key = (operation_name, *sorted(sizes.items()))
        plan = prepared.plans.get(plan_key)
        if plan is None:
            if len(prepared.plans) > 256:
                prepared.plans.clear()
            plan = prepared.plans[plan_key] = CostCalculator(self.schema, prepared.document, variables).plan(operation)
        requested = plan.requested
        if requested > max_cost:
            return {
                "errors": [{
                    "message": f"Query cost is {requested}, which exceeds the single query max cost limit ({max_cost}).",
                    "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": max_cost},
                }],
                "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": None,
                                        "throttleStatus": bucket.status()}},
            }
        if throttle or not bucket.try_take(requested):
            return throttled_body(requested, bucket)
        return Started(text, variables, operation_name, context, bucket, prepared, operation, plan)

    def finish(self, started: Started) -> dict[str, Any]:
        """Run a started query; refund requested − actual; the body reports the balance after the refund."""
        prepared, operation, plan, bucket, context = (started.prepared, started.operation, started.plan,
                                                      started.bucket, started.context)
        text, variables, operation_name = started.text, started.variables, started.operation_name
        requested = plan.requested
        response_key: tuple[Any, ...] | None = None
        if self.responses is not None and operation.operation == OperationType.QUERY:
            shop = context.shop
            response_key = (shop.domain, shop.version, text, operation_name, json.dumps(variables, sort_keys=True))
            cached = self.responses.get(response_key)
            if cached is not None:
                answer, actual = cached
                bucket.give_back(requested - actual)
                return {**answer, "extensions": {**answer["extensions"], "cost": _cost(requested, actual, bucket)}}
        result: ExecutionResult = execute(  # type: ignore[assignment]  # every resolver is synchronous
            self.schema, prepared.document, root_value=None, context_value=context,  # type: ignore[arg-type]
            variable_values=variables, operation_name=operation_name,
            field_resolver=resolve_field, type_resolver=resolve_type, is_awaitable=_never_awaitable,
        )
        actual = plan.actual(result.data) if result.data is not None else requested
        bucket.give_back(requested - actual)
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [format_error(e, "INTERNAL_SERVER_ERROR" if e.original_error and not isinstance(
                e.original_error, GraphQLError) else "BAD_USER_INPUT") for e in result.errors]
        body["data"] = result.data
        extensions: dict[str, Any] = {"cost": _cost(requested, actual, bucket)}
        if context.search_notes:
            extensions["search"] = context.search_notes
        body["extensions"] = extensions
        if response_key is not None and self.responses is not None:
            self.responses[response_key] = (body, actual)
        return body


@dataclass
class Started:
    """A query whose requested cost is taken from the bucket, waiting for `GraphQLRunner.finish`."""

    text: str
    variables: dict[str, Any]
    operation_name: str | None
    context: RequestContext
    bucket: Bucket
    prepared: Prepared
    operation: OperationDefinitionNode
    plan: CostPlan


def _cost(requested: int, actual: int, bucket: Bucket) -> dict[str, Any]:
    return {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": bucket.status()}


def throttled_body(requested: int, bucket: Bucket) -> dict[str, Any]:
    return {
        "errors": [{"message": "Throttled", "extensions": {
            "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
        "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": None,
                                "throttleStatus": bucket.status()}},
    }


def _pick_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name:
        return next((o for o in operations if o.name is not None and o.name.value == name), None)
    return operations[0] if len(operations) == 1 else None
