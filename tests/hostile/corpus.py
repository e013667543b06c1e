"""The hostile-input corpus: malformed and hostile definitions and conditions, as data.

Every case names its input, the :class:`PluginErrorCode` it must be refused with and a
fragment of the message that names the problem. Small inputs are written out (JSON text
where the text itself is the attack: duplicate keys, ``NaN``, ``1e400``; JSON-shaped dicts
otherwise); inputs too big to write out (10,000 levels of nesting, 5,000-digit integers,
oversize definitions) are built by the small functions at the top, outside the measured
region, because building them is the attacker's cost, not the engine's.

The tests that run them are ``test_hostile_definitions.py``, ``test_hostile_conditions.py``
(both pure, no server) and ``test_hostile_api.py`` (the real dev server); ``docs/LIMITS.md``
lists the limits they probe.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine import PluginErrorCode, PluginWorkflow
from engine.language.conditions import (
    MAX_CONDITION_DEPTH,
    MAX_CONDITION_LENGTH,
    MAX_CONDITION_NESTING,
)
from engine.language.models import MAX_JSON_TEXT_BYTES
from engine.language.validation import (
    MAX_CONNECTIONS,
    MAX_DEFINITION_BYTES,
    MAX_DEFINITION_VALUES,
    MAX_NODES,
)

Code = PluginErrorCode

# -- builders (kept small; the cases below are the data) -------------------------------------


def N(node_id: str, plugin_id: str = "echo", **fields: Any) -> dict[str, Any]:
    """A node as JSON."""
    return {"node_id": node_id, "plugin_id": plugin_id, **fields}


def C(source: str, target: str, kind: str = "data_flow", **fields: Any) -> dict[str, Any]:
    """A connection as JSON."""
    return {"source_node": source, "target_node": target, "connection_type": kind, **fields}


def W(
    nodes: list[dict[str, Any]],
    connections: list[dict[str, Any]] | None = None,
    mode: str = "parallel",
    **fields: Any,
) -> dict[str, Any]:
    """A definition as JSON (workflow id ``hostile``)."""
    return {
        "workflow_id": "hostile",
        "execution_mode": mode,
        "nodes": nodes,
        "connections": connections or [],
        **fields,
    }


def source(node_id: str = "src") -> dict[str, Any]:
    """A Source node (EventDriven definitions need one)."""
    return N(node_id, "timer", node_type="source")


def nested_dict(depth: int) -> dict[str, Any]:
    """``{"a": {"a": ... {}}}``, ``depth`` dicts deep, built without recursion."""
    root: dict[str, Any] = {}
    current = root
    for _ in range(depth - 1):
        current["a"] = {}
        current = current["a"]
    return root


def with_config(config: Any, **node_fields: Any) -> Callable[[], PluginWorkflow]:
    """A one-node definition whose configuration is ``config`` (built in Python, where
    values JSON cannot hold are possible)."""

    def build() -> PluginWorkflow:
        workflow = PluginWorkflow.from_json(W([N("a", **node_fields)]))
        # Assignment validates the dict but keeps its values as they are.
        workflow.nodes[0].configuration = config
        return workflow

    return build


def cyclic() -> dict[str, Any]:
    looped: dict[str, Any] = {"name": "loop"}
    looped["self"] = looped
    return looped


def shared_bomb() -> list[Any]:
    """2**40 leaves from 40 shared lists: small in memory, huge when walked naively."""
    value: list[Any] = [0, 0]
    for _ in range(40):
        value = [value, value]
    return value


def text_with_deep_config(depth: int) -> str:
    return (
        '{"workflow_id": "hostile", "nodes": [{"node_id": "a", "plugin_id": "echo", '
        '"configuration": ' + '{"a": ' * depth + "1" + "}" * depth + "}]}"
    )


def text_with(value: str, where: str = "configuration") -> str:
    """A one-node definition with ``value`` (JSON text) as its configuration's ``x``."""
    if where == "name":
        return '{"workflow_id": "hostile", "name": ' + value + "}"
    return (
        '{"workflow_id": "hostile", "nodes": [{"node_id": "a", "plugin_id": "echo", '
        '"configuration": {"x": ' + value + "}}]}"
    )


def many_nodes(count: int) -> Callable[[], PluginWorkflow]:
    return lambda: PluginWorkflow.from_json(W([N(f"n{i}") for i in range(count)]))


def many_connections(count: int) -> Callable[[], PluginWorkflow]:
    def build() -> PluginWorkflow:
        size = math.isqrt(2 * count) + 2  # size * (size - 1) / 2 > count
        nodes = [N(f"n{i}") for i in range(size)]
        # Distinct edges i -> j (i < j): no duplicates, no cycle.
        pairs = ((i, j) for i in range(size) for j in range(i + 1, size))
        edges = [C(f"n{i}", f"n{j}", "dependency") for i, j in itertools.islice(pairs, count)]
        assert len(edges) == count
        return PluginWorkflow.from_json(W(nodes, edges))

    return build


def over_the_byte_limit() -> PluginWorkflow:
    filler = "x" * 25_000
    nodes = [N(f"n{i}", configuration={"blob": filler}) for i in range(50)]
    return PluginWorkflow.from_json(W(nodes))


def long_ring(size: int) -> Callable[[], PluginWorkflow]:
    def build() -> PluginWorkflow:
        edges = [C(f"n{i}", f"n{(i + 1) % size}") for i in range(size)]
        return PluginWorkflow.from_json(W([N(f"n{i}") for i in range(size)], edges))

    return build


# -- definitions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DefinitionCase:
    """A hostile definition: JSON text (str or bytes), a JSON dict, a PluginWorkflow, or a
    function building one of those."""

    id: str
    category: str
    input: Any
    code: PluginErrorCode
    message: str
    # For the API sweep: cases that are only about reading JSON text have no PluginWorkflow.
    notes: str = ""


def _d(
    id: str, category: str, input: Any, code: PluginErrorCode, message: str, notes: str = ""
) -> DefinitionCase:
    return DefinitionCase(id, category, input, code, message, notes)


S, T, J, V, L = "structure", "ids", "json", "values", "limits"
NFC_ID = "caf\u00e9"  # é as one code point
NFD_ID = "cafe\u0301"  # e + combining acute accent: looks the same
CYRILLIC_A = "\u0430"

# fmt: off
DEFINITIONS: list[DefinitionCase] = [
    # Cycles over every connection type, and self-loops.
    _d("cycle-data-flow", S, W([N("a"), N("b"), N("c")], [C("a", "b"), C("b", "c"), C("c", "a")]),
       Code.CircularDependency, "circular dependency: a -> b -> c -> a"),
    _d("cycle-control", S, W([N("a"), N("b")], [C("a", "b", "control"), C("b", "a", "control")]),
       Code.CircularDependency, "circular dependency: a -> b -> a"),
    _d("cycle-dependency", S,
       W([N("a"), N("b")], [C("a", "b", "dependency"), C("b", "a", "dependency")]),
       Code.CircularDependency, "circular dependency: a -> b -> a"),
    _d("cycle-event", S,
       W([source(), N("a"), N("b")],
         [C("src", "a", "event"), C("a", "b", "event"), C("b", "a", "event")], "event_driven"),
       Code.CircularDependency, "circular dependency: a -> b -> a",
       "a pass runs Event connections as Dependency ones: this cycle could never run"),
    _d("cycle-mixed-kinds", S,
       W([N("a"), N("b"), N("c")],
         [C("a", "b"), C("b", "c", "control"), C("c", "a", "dependency")]),
       Code.CircularDependency, "circular dependency: a -> b -> c -> a"),
    _d("cycle-5000-node-ring", S, long_ring(5000),
       Code.CircularDependency, "(5,000 nodes)"),
    _d("self-loop-data-flow", S, W([N("a")], [C("a", "a")]),
       Code.CircularDependency, "connects node 'a' to itself"),
    _d("self-loop-control", S,
       W([N("a")], [C("a", "a", "control", properties={"condition": "ok == true"})]),
       Code.CircularDependency, "connects node 'a' to itself"),
    _d("self-loop-dependency", S, W([N("a")], [C("a", "a", "dependency")]),
       Code.CircularDependency, "connects node 'a' to itself"),
    _d("self-loop-event", S, W([source(), N("a")], [C("src", "a", "event"), C("a", "a", "event")],
                               "event_driven"),
       Code.CircularDependency, "connects node 'a' to itself"),
    _d("cycle-event-feedback-into-source", S,
       W([source(), N("a")], [C("src", "a", "event"), C("a", "src", "event")], "event_driven"),
       Code.CircularDependency, "circular dependency: src -> a -> src",
       "every pass from src would run a -> src as a Dependency connection: a cycle"),
    # Dangling endpoints.
    _d("dangling-target", S, W([N("a")], [C("a", "ghost")]),
       Code.NodeNotFound, "target_node 'ghost' is not a node of the workflow"),
    _d("dangling-source", S, W([N("a")], [C("ghost", "a")]),
       Code.NodeNotFound, "source_node 'ghost' is not a node of the workflow"),
    _d("empty-endpoint", S, W([N("a")], [C("", "a")]),
       Code.NodeNotFound, "has no source_node"),
    _d("dangling-look-alike-endpoint", S, W([N("a"), N("b")], [C("a", CYRILLIC_A)]),
       Code.NodeNotFound, f"target_node '{CYRILLIC_A}' is not a node of the workflow",
       "Cyrillic \u0430 never resolves to node a"),
    # Duplicate ids, Unicode look-alikes and normalisation: ids are ASCII, compared as bytes.
    _d("duplicate-node-id", T, W([N("a"), N("a")]),
       Code.InvalidWorkflowStructure, "duplicate node_id 'a'"),
    _d("look-alike-node-id", T, W([N("a"), N(CYRILLIC_A)]),
       Code.InvalidWorkflowStructure, "may only contain ASCII letters"),
    _d("nfc-nfd-node-ids", T, W([N(NFC_ID), N(NFD_ID)]),
       Code.InvalidWorkflowStructure, "may only contain ASCII letters",
       "the same visible id twice; neither is accepted, so they cannot collide"),
    _d("zero-width-node-id", T, W([N("ab"), N("a\u200bb")]),
       Code.InvalidWorkflowStructure, "may only contain ASCII letters"),
    _d("fullwidth-node-id", T, W([N("\uff41")]),
       Code.InvalidWorkflowStructure, "may only contain ASCII letters"),
    _d("duplicate-connection-id", T,
       W([N("a"), N("b"), N("c")],
         [C("a", "b", connection_id="c1"), C("b", "c", connection_id="c1")]),
       Code.InvalidWorkflowStructure, "duplicate connection_id 'c1'"),
    _d("look-alike-connection-id", T,
       W([N("a"), N("b"), N("c")],
         [C("a", "b", connection_id="c1"), C("b", "c", connection_id="\u0441" + "1")]),
       Code.InvalidWorkflowStructure, "connection_id '\u04411' may only contain ASCII"),
    _d("duplicate-connection", T, W([N("a"), N("b")], [C("a", "b"), C("a", "b")]),
       Code.InvalidConnection, "duplicates an earlier connection"),
    _d("node-id-with-nul", T, W([N("a\x00b")]),
       Code.InvalidWorkflowStructure, "node_id 'a\\x00b' may only contain"),
    _d("node-id-with-newline", T, W([N("a\nb")]),
       Code.InvalidWorkflowStructure, "node_id 'a\\nb' may only contain"),
    _d("workflow-id-with-slash", T, {**W([N("a")]), "workflow_id": "a/../b"},
       Code.InvalidWorkflowStructure, "workflow_id 'a/../b' may only contain"),
    _d("workflow-id-too-long", T, {**W([N("a")]), "workflow_id": "w" * 129},
       Code.InvalidWorkflowStructure, "is longer than 128 characters"),
    _d("workflow-id-empty", T, {**W([N("a")]), "workflow_id": ""},
       Code.InvalidWorkflowStructure, "workflow_id is empty"),
    _d("plugin-id-with-control-characters", T, W([N("a", "echo\n\x00")]),
       Code.InvalidWorkflowStructure, "plugin_id 'echo\\n\\x00' may only contain printable ASCII"),
    # Ports.
    _d("unknown-output-port", S,
       W([N("a", output_ports=["out"]), N("b")], [C("a", "b", source_port="nope")]),
       Code.InvalidConnection, "node 'a' has no output port 'nope' (declared: out)"),
    _d("unknown-input-port", S,
       W([N("a"), N("b", input_ports=["in"])], [C("a", "b", target_port="nope")]),
       Code.InvalidConnection, "node 'b' has no input port 'nope' (declared: in)"),
    _d("look-alike-port-on-undeclared-node", S,
       W([N("a"), N("b")], [C("a", "b", target_port="\u0456n")]),
       Code.InvalidWorkflowStructure, "target_port '\u0456n' may only contain ASCII",
       "a node without declared ports takes any port name as an input key, but names are ids"),
    _d("port-with-newline", S, W([N("a", output_ports=["out\n"])]),
       Code.InvalidWorkflowStructure, "output port 'out\\n' may only contain"),
    _d("duplicate-declared-ports", S, W([N("a", input_ports=["x", "x"])]),
       Code.InvalidWorkflowStructure, "input_ports contains duplicates"),
    _d("two-edges-into-one-input", S,
       W([N("a"), N("b"), N("c")], [C("a", "c", target_port="in"), C("b", "c", target_port="in")]),
       Code.InvalidConnection, "both deliver to input 'in' of node 'c'"),
    _d("condition-on-data-flow", S,
       W([N("a"), N("b")], [C("a", "b", properties={"condition": "ok == true"})]),
       Code.InvalidConnection, "conditions are only evaluated on Control connections"),
    _d("event-connection-in-batch-mode", S, W([N("a"), N("b")], [C("a", "b", "event")]),
       Code.ExecutionModeNotSupported, "only EventDriven mode routes"),
    # Wrong JSON types for every top-level field, and typos.
    _d("root-is-a-list", J, "[]",
       Code.InvalidWorkflowStructure, "JSON must be an object, got list"),
    _d("root-is-a-string", J, '"workflow"',
       Code.InvalidWorkflowStructure, "JSON must be an object, got str"),
    _d("workflow-id-number", J, {"workflow_id": 42},
       Code.InvalidWorkflowStructure, "workflow_id: Input should be a valid string"),
    _d("name-list", J, {"workflow_id": "w", "name": ["x"]},
       Code.InvalidWorkflowStructure, "name: Input should be a valid string"),
    _d("description-object", J, {"workflow_id": "w", "description": {}},
       Code.InvalidWorkflowStructure, "description: Input should be a valid string"),
    _d("execution-mode-unknown", J, {"workflow_id": "w", "execution_mode": "fast"},
       Code.InvalidWorkflowStructure, "execution_mode: Input should be 'sequential'"),
    _d("execution-mode-boolean", J, {"workflow_id": "w", "execution_mode": True},
       Code.InvalidWorkflowStructure, "execution_mode: Input should be 'sequential'"),
    _d("nodes-object", J, {"workflow_id": "w", "nodes": {"a": N("a")}},
       Code.InvalidWorkflowStructure, "nodes: Input should be a valid list"),
    _d("nodes-null", J, {"workflow_id": "w", "nodes": None},
       Code.InvalidWorkflowStructure, "nodes: Input should be a valid list"),
    _d("node-is-a-string", J, {"workflow_id": "w", "nodes": ["a"]},
       Code.InvalidWorkflowStructure, "nodes.0: Input should be a valid dictionary"),
    _d("connections-string", J, {"workflow_id": "w", "connections": "a->b"},
       Code.InvalidWorkflowStructure, "connections: Input should be a valid list"),
    _d("global-configuration-list", J, {"workflow_id": "w", "global_configuration": []},
       Code.InvalidWorkflowStructure, "global_configuration: Input should be a valid dictionary"),
    _d("metadata-string", J, {"workflow_id": "w", "metadata": "x"},
       Code.InvalidWorkflowStructure, "metadata: Input should be a valid dictionary"),
    _d("version-string", J, {"workflow_id": "w", "version": "7"},
       Code.InvalidWorkflowStructure, "version: Input should be a valid integer"),
    _d("version-boolean", J, {"workflow_id": "w", "version": True},
       Code.InvalidWorkflowStructure, "version: Input should be a valid integer"),
    _d("configuration-list", J, W([N("a", configuration=[1, 2])]),
       Code.InvalidWorkflowStructure, "nodes.0.configuration: Input should be a valid dictionary"),
    _d("ports-string", J, W([N("a", input_ports="abc")]),
       Code.InvalidWorkflowStructure, "nodes.0.input_ports: Input should be a valid list"),
    _d("typo-top-level-key", J, {"workflow_id": "w", "conections": []},
       Code.InvalidWorkflowStructure, "conections: Extra inputs are not permitted"),
    _d("look-alike-top-level-key", J, {"workflow_id": "w", "n\u043edes": []},
       Code.InvalidWorkflowStructure, "n\u043edes: Extra inputs are not permitted",
       "Cyrillic \u043e in 'nodes' is an unknown key, not the nodes"),
    # JSON text: what parsers disagree on is refused, not guessed.
    _d("duplicate-key-top-level", J, '{"workflow_id": "good", "workflow_id": "evil"}',
       Code.InvalidWorkflowStructure, "duplicate key 'workflow_id'"),
    _d("duplicate-key-in-node", J,
       '{"workflow_id": "w", "nodes": [{"node_id": "a", "plugin_id": "echo", '
       '"plugin_id": "shell"}]}',
       Code.InvalidWorkflowStructure, "duplicate key 'plugin_id'"),
    _d("duplicate-key-in-configuration", J, text_with('{"limit": 1, "limit": 1000000}'),
       Code.InvalidWorkflowStructure, "duplicate key 'limit'"),
    _d("nan-literal", J, text_with("NaN"),
       Code.InvalidWorkflowStructure, "NaN is not a JSON number"),
    _d("infinity-literal", J, text_with("-Infinity"),
       Code.InvalidWorkflowStructure, "-Infinity is not a JSON number"),
    _d("float-overflow-1e400", J, text_with("1e400"),
       Code.InvalidWorkflowStructure, "the number 1e400 is too large for a double"),
    _d("integer-5000-digits", J, lambda: text_with("9" * 5000),
       Code.InvalidWorkflowStructure, "an integer of 5,000 digits is outside the 64-bit range"),
    _d("integer-2-pow-63", J, text_with(str(2**63)),
       Code.InvalidWorkflowStructure, f"the integer {2**63} is outside the 64-bit range"),
    _d("nesting-10000-levels-text", J, lambda: text_with_deep_config(10_000),
       Code.InvalidWorkflowStructure, "nests 10,003 levels deep; the limit is 67"),
    _d("nesting-100-levels-text", J, lambda: text_with_deep_config(100),
       Code.InvalidWorkflowStructure, "nests more than 67 levels deep"),
    _d("invalid-utf8", J, b'{"workflow_id": "w", "name": "\xff\xfe"}',
       Code.InvalidWorkflowStructure, "is not UTF-8: invalid start byte at byte 30"),
    _d("lone-surrogate-escape", J, text_with('"\\ud800"', where="name"),
       Code.InvalidWorkflowStructure, "name contains the lone surrogate U+D800"),
    _d("truncated-json", J, '{"workflow_id": "w", "nodes": [',
       Code.InvalidWorkflowStructure, "is not valid JSON: Expecting value (line 1, column 32)"),
    _d("byte-order-mark", J, '\ufeff{"workflow_id": "w"}',
       Code.InvalidWorkflowStructure, "is not valid JSON: Unexpected UTF-8 BOM"),
    _d("text-over-5-mb", L,
       lambda: '{"workflow_id": "w"' + " " * MAX_JSON_TEXT_BYTES + "}",
       Code.InvalidWorkflowStructure, "bytes; the limit is 5,000,000"),
    # Values built in Python that JSON cannot hold, or that attack the walkers.
    _d("configuration-nan", V, with_config({"x": float("nan")}),
       Code.InvalidWorkflowStructure, "configuration.x is nan, which is not a JSON number"),
    _d("configuration-infinity", V, with_config({"x": [1.0, float("inf")]}),
       Code.InvalidWorkflowStructure, "configuration.x[1] is inf, which is not a JSON number"),
    _d("configuration-huge-integer", V, with_config({"x": 10**5000}),
       Code.InvalidWorkflowStructure, "configuration.x is an integer of 5,001 digits"),
    _d("configuration-nested-10000", V, lambda: with_config(nested_dict(10_000))(),
       Code.InvalidWorkflowStructure, "nests more than 64 levels deep"),
    _d("configuration-cyclic", V, lambda: with_config(cyclic())(),
       Code.InvalidWorkflowStructure, "configuration.self.self"),
    _d("configuration-shared-bomb", V, lambda: with_config({"x": shared_bomb()})(),
       Code.InvalidWorkflowStructure,
       f"configuration takes the definition over {MAX_DEFINITION_VALUES:,} JSON values"),
    _d("configuration-set", V, with_config({"x": {1, 2}}),
       Code.InvalidWorkflowStructure, "configuration.x is of type set, which JSON does not have"),
    _d("configuration-bytes", V, with_config({"x": b"\x00"}),
       Code.InvalidWorkflowStructure, "configuration.x is of type bytes"),
    _d("configuration-tuple", V, with_config({"x": (1, 2)}),
       Code.InvalidWorkflowStructure, "configuration.x is a tuple; JSON has lists"),
    _d("configuration-integer-key", V, with_config({"x": {1: "one"}}),
       Code.InvalidWorkflowStructure, "has the key 1 of type int; JSON keys are strings"),
    _d("configuration-object", V, with_config({"x": object()}),
       Code.InvalidWorkflowStructure, "configuration.x is of type object"),
    _d("name-lone-surrogate", V,
       lambda: PluginWorkflow.from_json(W([N("a", name="\udc00")])),
       Code.InvalidWorkflowStructure, "node 'a': name contains the lone surrogate U+DC00"),
    _d("properties-nan", V,
       W([N("a"), N("b")], [C("a", "b", properties={"weight": float("nan")})]),
       Code.InvalidWorkflowStructure, "properties.weight is nan"),
    # Oversize definitions.
    _d("nodes-over-limit", L, many_nodes(MAX_NODES + 1),
       Code.InvalidWorkflowStructure, f"{MAX_NODES + 1} nodes; the limit is {MAX_NODES}"),
    _d("connections-over-limit", L, many_connections(MAX_CONNECTIONS + 1),
       Code.InvalidWorkflowStructure,
       f"{MAX_CONNECTIONS + 1} connections; the limit is {MAX_CONNECTIONS}"),
    _d("definition-over-byte-limit", L, over_the_byte_limit,
       Code.InvalidWorkflowStructure, f"the limit is {MAX_DEFINITION_BYTES:,}"),
]
# fmt: on


# -- conditions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionCase:
    """A hostile condition on a Control connection ``a -> b``.

    Refused at registration (``variables`` is None): ``validate_workflow`` raises
    ``InvalidConnection`` with ``message``. Otherwise it compiles, and evaluating it on
    ``variables`` (the output of ``a``) raises ``ConditionError`` with ``message``, or, if
    ``result`` is given, returns it: bounded and with its meaning intact.
    """

    id: str
    text: Any
    message: str = ""
    variables: dict[str, Any] | None = None
    result: bool | None = None
    notes: str = ""
    build: Callable[[], dict[str, Any]] | None = field(default=None, compare=False)


def _c(
    id: str,
    text: Any,
    message: str = "",
    variables: dict[str, Any] | None = None,
    *,
    result: bool | None = None,
    build: Callable[[], dict[str, Any]] | None = None,
    notes: str = "",
) -> ConditionCase:
    return ConditionCase(id, text, message, variables, result, notes, build)


def _ab_text(size: int) -> str:
    # Deterministic 'a'/'b' text: (a|b)-heavy patterns make RE2 leave its DFA for its NFA.
    return "".join("ab"[(i * 7919 % 13) & 1] for i in range(size))


# fmt: off
CONDITIONS: list[ConditionCase] = [
    # Code injection and attribute traversal: refused at registration.
    _c("python-import", "__import__('os').system('id') == 0", "reserved name '__import__'"),
    _c("exec-call", "exec('import os') == null", "calls 'exec', which is not a CEL function"),
    _c("eval-call", 'eval("1") == 1', "calls 'eval', which is not a CEL function"),
    _c("open-call", "open('/etc/passwd').size() > 0", "calls 'open', which is not a CEL function"),
    _c("dunder-class-mro", "x.__class__.__mro__[1].__subclasses__() == []",
       "reserved name '__class__'"),
    _c("dunder-globals", "f.__globals__ == {}", "reserved name '__globals__'"),
    _c("non-cel-reduce", "[1, 2].reduce(r, i, 0, r + i) == 3", "calls 'reduce'"),
    # Arithmetic bombs: CEL has no power operator or repetition; overflow is an error.
    _c("power-operator", "2 ** 100000 > 1", "not valid CEL"),
    _c("string-repetition", "'a' * 100000000 == ''",
       "has no variables and fails: type mismatch"),
    _c("list-multiplication", "[1] * 100000000 == []",
       "has no variables and fails: type mismatch"),
    _c("int64-overflow", "9223372036854775807 + 1 > 0",
       "has no variables and fails: return error for overflow"),
    _c("constant-division-by-zero", "1 / 0 == 1", "has no variables and fails: division by zero"),
    _c("constant-comprehension-bomb",
       "[" + ",".join(["0"] * 40) + "].all(a, [" + ",".join(["0"] * 40) + "].all(b, ["
       + ",".join(["0"] * 40) + "].all(c, true)))",
       "has no variables and fails: is too expensive"),
    # Size and nesting bombs.
    _c("one-megabyte", "x == 1 || " * 100_000 + "true",
       f"characters long; the limit is {MAX_CONDITION_LENGTH:,}"),
    _c("parentheses-10000", "(" * 10_000 + "true" + ")" * 10_000, "characters long"),
    _c("parentheses-400", "(" * 400 + "true" + ")" * 400,
       f"nests 400 levels deep; the limit is {MAX_CONDITION_NESTING}"),
    _c("brackets-in-lists", "[" * 40 + "1" + "]" * 40 + " == x", "nests 40 levels deep"),
    _c("parentheses-9", "(" * 9 + "x" + ")" * 9 + " == 1",
       f"parse tree has 102 levels; the limit is {MAX_CONDITION_DEPTH}",
       notes="under the bracket limit, over the tree depth checked at registration"),
    _c("unary-chain", "!" * 500 + "true", "nests 500 levels deep"),
    _c("operator-chain", "+".join(["x"] * 300) + " > 0",
       f"parse tree has 610 levels; the limit is {MAX_CONDITION_DEPTH}"),
    _c("ternary-chain", "x?true:" * 91 + "false", "parse tree has 101 levels"),
    _c("ternary-chain-at-the-limit", "x ? true : " * 90 + "false", variables={"x": False},
       result=False, notes="the deepest allowed tree evaluates with stack to spare"),
    # ReDoS: RE2 has no catastrophic backtracking; what it cannot do is refused up front.
    _c("redos-nested-quantifier", "s.matches('(a+)+$')", variables={"s": "a" * 50_000 + "b"},
       result=False, notes="linear in RE2: measured well under the budget"),
    _c("redos-alternation", "s.matches('(a|aa)*c')", variables={"s": "a" * 50_000}, result=False),
    _c("regex-back-reference", "s.matches('(a+)\\\\1')", "not RE2 syntax: invalid escape sequence"),
    _c("regex-look-ahead", "matches(s, '(?=a)a')", "not RE2 syntax: invalid perl operator"),
    _c("regex-repetition-bomb", "s.matches('((a{100}){100}){100}')", "not RE2 syntax"),
    _c("regex-from-data", "s.matches(p)", "not RE2 syntax: invalid escape sequence",
       {"s": "aa", "p": "(a)\\1"}, notes="a pattern from the output is checked when evaluated"),
    _c("regex-dfa-blowup-on-long-text", "s.matches('(.{0,100}a){0,10}x')", "is too expensive",
       build=lambda: {"s": _ab_text(100_000)},
       notes="over a second in RE2's NFA without the meter"),
    # Homoglyph variables and operators.
    _c("cyrillic-variable", "v\u0430lid == true",
       "non-ASCII character '\u0430' (U+0430 CYRILLIC SMALL LETTER A) at column 2"),
    _c("greek-variable", "\u03bfk == true", "U+03BF GREEK SMALL LETTER OMICRON"),
    _c("fullwidth-operator", "x \uff1d\uff1d 1", "U+FF1D FULLWIDTH EQUALS SIGN"),
    _c("non-ascii-inside-string-is-data", "name == 'v\u0430lid'", variables={"name": "valid"},
       result=False, notes="inside a string literal it is data, and not equal to 'valid'"),
    # Type confusion.
    _c("string-plus-int", '"1" + 1 == 2', "has no variables and fails: type mismatch"),
    _c("map-equals-int", "{'a': 1} == 1", "has no variables and fails: type mismatch"),
    _c("constant-not-boolean", "1 + 1", "result is int, not a boolean"),
    _c("variable-type-confusion", "x + 1 == 2", "type mismatch", {"x": "1"}),
    _c("variable-map-vs-int", "m > 0", "type mismatch", {"m": {"a": 1}}),
    _c("index-dunder-key", "x['__class__'] == 1", "no such key", {"x": {"a": 1}},
       notes="a key is data: there is no such key, and no attribute is reachable"),
    # Values that try to splice into the expression stay data.
    _c("splice-single-quotes", "name == 'x'", variables={"name": "x' || true || '"},
       result=False),
    _c("splice-double-quotes", 'name == "x"', variables={"name": '") || true || ("'},
       result=False),
    _c("splice-into-matches", "name.matches('^[a-z]+$')", variables={"name": "abc') || ('"},
       result=False),
    # Values that attack evaluation.
    _c("comprehension-bomb", "items.all(a, items.all(b, items.all(c, a + b + c >= 0)))",
       "is too expensive", build=lambda: {"items": list(range(300))}),
    _c("concatenation-bomb", "items.map(i, items + items).size() > 0", "is too expensive",
       build=lambda: {"items": list(range(100_000))}),
    _c("huge-variable", "size(items) > 0", "is too expensive",
       build=lambda: {"items": list(range(1_000_000))}),
    _c("deep-variable", "size(x) > 0", "'x' nests more than 64 levels deep",
       build=lambda: {"x": nested_dict(10_000)}),
    _c("unknown-variable", "missing == 1", "unknown variable 'missing' (the output has: present)",
       {"present": 1}),
    # Conditions where they do not belong.
    _c("condition-not-a-string", 5, "condition must be a string, got int"),
    _c("condition-empty", "   ", "condition is empty"),
]
# fmt: on
