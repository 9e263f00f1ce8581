"""Query cost and the per-shop leaky bucket, modelled on Shopify's calculated query cost.

The model (simple, documented, close enough to Shopify's to exercise a client's throttling):
- a scalar or enum field costs 0; every object (or interface/union) field costs 1 plus its selections;
- a connection costs 2, plus its items: `first`/`last` (requested) or the number returned (actual) times the cost of
  one item's selection (edges and pageInfo wrappers cost nothing themselves);
- a list of objects with a `first` argument multiplies its item cost by `first`, one with an `ids` argument
  (`nodes(ids:)`) by the number of ids; other lists count one item;
- a mutation costs 10 per root field, whatever it selects.

`requestedQueryCost` is computed from the document before running it; `actualQueryCost` from the result. The bucket
works as Shopify documents it: the requested cost is taken when a query starts (if the bucket holds less, the answer
is THROTTLED, with HTTP 200, and nothing is taken) and stays taken while the query runs — through any latency the
server injects; when it ends, requested − actual is refunded, and `throttleStatus.currentlyAvailable` in the answer
is the balance after that refund. Sizes and restore rates per plan: `PLANS` (Shopify's rate-limit page; the bucket
is 20 × the restore rate, 2000 on a standard plan as `maximumAvailable` reports).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_leaf_type,
    is_list_type,
)
from graphql.type import GraphQLInterfaceType, GraphQLObjectType, GraphQLUnionType

MUTATION_COST = 10


def _arg(node: FieldNode, name: str, variables: dict[str, Any]) -> Any:
    """An argument's value: a variable's value, else the literal's node (None when the argument is absent)."""
    for arg in node.arguments or ():
        if arg.name.value == name:
            value = arg.value
            return variables.get(value.name.value) if isinstance(value, VariableNode) else value
    return None


def _int_arg(node: FieldNode, name: str, variables: dict[str, Any]) -> int | None:
    value = _arg(node, name, variables)
    if isinstance(value, IntValueNode):
        return int(value.value)
    return value if type(value) is int else None


def _list_len_arg(node: FieldNode, name: str, variables: dict[str, Any]) -> int | None:
    """The length of a list argument (`nodes(ids: [...])`): Shopify prices such a field per requested id."""
    value = _arg(node, name, variables)
    if isinstance(value, ListValueNode):
        return len(value.values)
    return len(value) if isinstance(value, list) else None


@dataclass(frozen=True)
class PlanField:
    """One costed field of a document: where it sits in the response (`key`) and how it counts."""

    key: str
    kind: str  # "object" | "list" | "connection"
    own: int  # 1 per object, 0 for edge / pageInfo wrappers
    size: int  # requested multiplier of a list (first / last, or the enclosing connection's page size)
    children: tuple[PlanField, ...]


def _merge(fields: list[PlanField]) -> tuple[PlanField, ...]:
    """Fields selected twice under one response key (through fragments) count once, with their selections merged."""
    merged: dict[str, PlanField] = {}
    for f in fields:
        seen = merged.get(f.key)
        merged[f.key] = f if seen is None else PlanField(f.key, seen.kind, seen.own, seen.size,
                                                           _merge([*seen.children, *f.children]))
    return tuple(merged.values())


@dataclass(frozen=True)
class CostPlan:
    """A document's cost model, compiled once per (document, page-size variables): `requested` up front,
    `actual(data)` from the response data."""

    fields: tuple[PlanField, ...]
    requested: int
    mutation_fields: int = 0

    def actual(self, data: Any) -> int:
        if self.mutation_fields:
            return MUTATION_COST * self.mutation_fields
        return _actual(self.fields, data)


def _requested(fields: tuple[PlanField, ...]) -> int:
    total = 0
    for f in fields:
        inner = _requested(f.children)
        if f.kind == "connection":
            total += 2 + inner
        elif f.kind == "list":
            total += f.size * (f.own + inner)
        else:
            total += f.own + inner
    return total


def _actual(fields: tuple[PlanField, ...], data: Any) -> int:
    total = 0
    for f in fields:
        value = data.get(f.key) if isinstance(data, dict) else None
        if f.kind == "connection":
            total += 2 + (_actual(f.children, value) if value is not None else 0)
        elif f.kind == "list":
            for item in value or ():
                total += f.own + _actual(f.children, item)
        else:
            total += f.own + (_actual(f.children, value) if value is not None else 0)
    return total


class CostCalculator:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any] | None) -> None:
        self.schema = schema
        self.variables = variables or {}
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}

    def _fields(self, selection_set: SelectionSetNode | None, parent: Any) -> list[tuple[FieldNode, Any]]:
        """(field node, field definition) of every field selected on `parent`, through fragments."""
        out: list[tuple[FieldNode, Any]] = []
        if selection_set is None:
            return out
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if name.startswith("__"):
                    continue
                fields = getattr(parent, "fields", {})
                if name in fields:
                    out.append((selection, fields[name]))
            elif isinstance(selection, InlineFragmentNode):
                target = parent
                if selection.type_condition is not None:
                    target = self.schema.get_type(selection.type_condition.name.value) or parent
                out.extend(self._fields(selection.selection_set, target))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    target = self.schema.get_type(fragment.type_condition.name.value) or parent
                    out.extend(self._fields(fragment.selection_set, target))
        return out

    def _compile(self, selection_set: SelectionSetNode | None, parent: Any, page: int = 1) -> tuple[PlanField, ...]:
        planned: list[PlanField] = []
        for node, definition in self._fields(selection_set, parent):
            named = get_named_type(definition.type)
            if is_leaf_type(named) or not isinstance(named, (GraphQLObjectType, GraphQLInterfaceType, GraphQLUnionType)):
                continue
            key = node.alias.value if node.alias else node.name.value
            if named.name.endswith("Connection"):
                size = _int_arg(node, "first", self.variables) or _int_arg(node, "last", self.variables) or 1
                planned.append(PlanField(key, "connection", 0, 1, self._compile(node.selection_set, named, size)))
                continue
            own = 0 if named.name.endswith("Edge") or named.name == "PageInfo" else 1
            children = self._compile(node.selection_set, named)
            if is_list_type(definition.type) or is_list_type(getattr(definition.type, "of_type", None)):
                first = _int_arg(node, "first", self.variables)
                ids = _list_len_arg(node, "ids", self.variables) if first is None else None
                size = first if first is not None else ids if ids is not None else page
                planned.append(PlanField(key, "list", own, size, children))
            else:
                planned.append(PlanField(key, "object", own, 1, children))
        return _merge(planned)

    def plan(self, operation: OperationDefinitionNode) -> CostPlan:
        if operation.operation == OperationType.MUTATION:
            count = len(self._fields(operation.selection_set, self.schema.mutation_type))
            return CostPlan((), MUTATION_COST * count, count)
        fields = self._compile(operation.selection_set, self.schema.query_type)
        return CostPlan(fields, _requested(fields))


#: plan → (bucket size, restore rate per second)
PLANS: dict[str, tuple[float, float]] = {
    "standard": (2000, 100),
    "advanced": (4000, 200),
    "plus": (20000, 1000),
    "commerce_components": (40000, 2000),
}


@dataclass
class Bucket:
    """Shopify's leaky bucket: `available` refills at `restore_rate` points per second up to `size`."""

    size: float = 2000
    restore_rate: float = 100
    available: float = 2000
    updated: float = 0.0

    def refill(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        if self.updated:
            self.available = min(self.size, self.available + (now - self.updated) * self.restore_rate)
        self.updated = now
        return self.available

    def try_take(self, cost: float) -> bool:
        self.refill()
        if cost > self.available:
            return False
        self.available -= cost
        return True

    def give_back(self, points: float) -> None:
        self.refill()
        self.available = min(self.size, self.available + max(0.0, points))

    @classmethod
    def for_plan(cls, plan: str) -> Bucket:
        """A full bucket of that plan's size and restore rate (KeyError for an unknown plan)."""
        size, rate = PLANS[plan]
        return cls(size=size, restore_rate=rate, available=size)

    def status(self) -> dict[str, Any]:
        self.refill()
        return {"maximumAvailable": float(self.size), "currentlyAvailable": int(self.available),
                "restoreRate": float(self.restore_rate)}
