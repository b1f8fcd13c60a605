"""template.yaml read as CloudFormation and SAM read it, for the local stack and the local invoke.

* :func:`load_template`: YAML with the CloudFormation short-form tags (``!Ref``, ``!GetAtt``,
  ``!Sub``, ``!If`` ...) turned into their long forms (``{"Ref": ...}``, ``{"Fn::GetAtt": ...}``).
* :func:`resolve_parameters`: every parameter's value (its Default, else an override), checked
  against its Type, AllowedValues, AllowedPattern, MinValue/MaxValue and MinLength/MaxLength.
* :func:`read_samconfig` and :func:`parse_parameter_overrides`: samconfig.toml's
  ``parameter_overrides`` (a ``Key=Value`` string or a list of them), stack name and region.
* :class:`IntrinsicResolver`: Ref (parameters, pseudo parameters, the local stack's resources),
  Fn::GetAtt, Fn::Sub, Fn::If with Conditions, Fn::Equals/Not/And/Or, Fn::FindInMap, Fn::Join,
  Fn::Select, Fn::Split, Fn::Base64, Fn::Contains; the template's Rules.
* :func:`function_config`: a function's Handler, CodeUri, Layers, Runtime, Timeout, MemorySize,
  Environment and SQS events, with SAM's Globals merged in.

Every error is a :class:`TemplateError` whose message names the parameter, resource or function
at fault.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

# PyYAML ships no type information (and the dev requirements carry no types-PyYAML).
import yaml

ParameterValue = str | list[str]
"""A resolved parameter: a string, or a list of strings for CommaDelimitedList and List<...>."""


class TemplateError(ValueError):
    """The template, a parameter value, samconfig.toml or an intrinsic function is wrong."""


class ParameterError(TemplateError):
    """A parameter has no value or a value its declaration refuses; ``parameter`` names it."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"parameter {parameter}: {problem}")
        self.parameter = parameter


# YAML.

_SHORT_FORMS: Final = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "And",
            "Base64",
            "Cidr",
            "Contains",
            "Equals",
            "FindInMap",
            "GetAtt",
            "GetAZs",
            "If",
            "ImportValue",
            "Join",
            "Length",
            "Not",
            "Or",
            "Select",
            "Split",
            "Sub",
            "ToJsonString",
        )
    },
}


class CloudFormationLoader(yaml.SafeLoader):
    """yaml.SafeLoader that reads CloudFormation's short-form tags as their long forms."""


def _construct_short_form(
    loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node
) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - yaml has no other node kinds
        raise TemplateError(f"!{tag_suffix}: unexpected YAML node {node!r}")
    if tag_suffix == "GetAtt" and isinstance(value, str):
        # !GetAtt Resource.Attribute: the attribute itself may contain dots (Endpoint.Address).
        value = value.split(".", 1)
    return {_SHORT_FORMS[tag_suffix]: value}


def _construct_timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    # CloudFormation keeps dates as strings (AWSTemplateFormatVersion: 2010-09-09 unquoted).
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


def _short_form_constructor(tag_suffix: str) -> Callable[[yaml.SafeLoader, yaml.Node], Any]:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        return _construct_short_form(loader, tag_suffix, node)

    return construct


for _tag in _SHORT_FORMS:
    CloudFormationLoader.add_constructor(f"!{_tag}", _short_form_constructor(_tag))
CloudFormationLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp_as_text)


def parse_template(text: str) -> dict[str, Any]:
    """A template from YAML (or JSON) text, short-form tags in their long forms."""
    document = yaml.load(text, Loader=CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict):
        raise TemplateError("a template must be a YAML mapping")
    return document


def load_template(path: str | Path) -> dict[str, Any]:
    """:func:`parse_template` of the file at ``path``."""
    return parse_template(Path(path).read_text(encoding="utf-8"))


# Scalars as CloudFormation passes them around.


def cfn_text(value: Any) -> str:
    """A scalar as CloudFormation stringifies it: ``true``, ``5``, ``0.05``, the text itself."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if value is None:
        return ""
    raise TemplateError(f"expected a string, number or boolean, got {value!r}")


# Parameters.

_LIST_TYPES: Final = ("CommaDelimitedList", "List<")


@dataclass(frozen=True, slots=True)
class ParameterSpec:
    """One entry of the template's Parameters section."""

    name: str
    type: str
    default: str | None = None
    allowed_values: tuple[str, ...] | None = None
    allowed_pattern: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    min_length: int | None = None
    max_length: int | None = None

    @classmethod
    def from_template(cls, name: str, body: Mapping[str, Any]) -> ParameterSpec:
        """Read a Parameters entry; raises :class:`ParameterError` when it has no Type."""
        if "Type" not in body:
            raise ParameterError(name, "has no Type")
        default = body.get("Default")
        if isinstance(default, list):
            default_text: str | None = ",".join(cfn_text(item) for item in default)
        else:
            default_text = None if default is None else cfn_text(default)
        allowed = body.get("AllowedValues")
        return cls(
            name=name,
            type=str(body["Type"]),
            default=default_text,
            allowed_values=None if allowed is None else tuple(cfn_text(v) for v in allowed),
            allowed_pattern=body.get("AllowedPattern"),
            min_value=_optional_float(body.get("MinValue")),
            max_value=_optional_float(body.get("MaxValue")),
            min_length=_optional_int(body.get("MinLength")),
            max_length=_optional_int(body.get("MaxLength")),
        )

    @property
    def is_list(self) -> bool:
        return self.type.startswith(_LIST_TYPES)

    @property
    def is_number(self) -> bool:
        return self.type in ("Number", "List<Number>")

    def validate(self, raw: str) -> ParameterValue:
        """The value a Ref of this parameter gives for ``raw``; raises :class:`ParameterError`."""
        if self.is_list:
            # CloudFormation splits at commas; blanks around an item are not part of it here.
            items = [item.strip() for item in raw.split(",")] if raw != "" else []
            for item in items:
                self._check(item, raw)
            return items
        self._check(raw, raw)
        return raw

    def _check(self, value: str, whole: str) -> None:
        shown = repr(value) if value == whole else f"{value!r} (in {whole!r})"
        if self.is_number:
            try:
                number = float(value)
            except ValueError:
                raise ParameterError(self.name, f"{shown} is not a Number") from None
            if self.min_value is not None and number < self.min_value:
                raise ParameterError(self.name, f"{shown} is below MinValue {self.min_value:g}")
            if self.max_value is not None and number > self.max_value:
                raise ParameterError(self.name, f"{shown} is above MaxValue {self.max_value:g}")
        if self.allowed_values is not None and not self._allowed(value):
            raise ParameterError(
                self.name, f"{shown} is not one of AllowedValues {list(self.allowed_values)}"
            )
        if self.allowed_pattern is not None and re.fullmatch(self.allowed_pattern, value) is None:
            raise ParameterError(
                self.name, f"{shown} does not match AllowedPattern {self.allowed_pattern}"
            )
        if self.min_length is not None and len(value) < self.min_length:
            raise ParameterError(self.name, f"{shown} is shorter than MinLength {self.min_length}")
        if self.max_length is not None and len(value) > self.max_length:
            raise ParameterError(self.name, f"{shown} is longer than MaxLength {self.max_length}")

    def _allowed(self, value: str) -> bool:
        assert self.allowed_values is not None
        if value in self.allowed_values:
            return True
        if self.is_number:
            # 60 and 60.0 are the same Number.
            try:
                number = float(value)
                return any(float(allowed) == number for allowed in self.allowed_values)
            except ValueError:
                return False
        return False


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def parameter_specs(template: Mapping[str, Any]) -> dict[str, ParameterSpec]:
    """The template's Parameters, by name."""
    return {
        name: ParameterSpec.from_template(name, body or {})
        for name, body in (template.get("Parameters") or {}).items()
    }


def resolve_parameters(
    template: Mapping[str, Any], overrides: Mapping[str, str] | None = None
) -> dict[str, ParameterValue]:
    """Every parameter's value: the override when given, else the Default, checked.

    Raises :class:`ParameterError` naming the parameter when one has no value (no Default and no
    override), when a value breaks its declaration, or when an override names no parameter.
    """
    specs = parameter_specs(template)
    given = dict(overrides or {})
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise ParameterError(
            unknown[0], f"is not a parameter of the template (it has {', '.join(sorted(specs))})"
        )
    values: dict[str, ParameterValue] = {}
    for name, spec in specs.items():
        raw = given.get(name, spec.default)
        if raw is None:
            raise ParameterError(
                name,
                "has no value: the template gives it no Default, so pass "
                f"{name}=... in --parameter-overrides or samconfig.toml's parameter_overrides",
            )
        values[name] = spec.validate(raw)
    return values


# samconfig.toml.

_KEY_VALUE_FORM: Final = re.compile(r"ParameterKey=(?P<key>[^,]+),ParameterValue=(?P<value>.*)")


def parse_parameter_overrides(value: str | Sequence[str]) -> dict[str, str]:
    """``Key=Value`` pairs as SAM takes them: one string of space-separated pairs (values may be
    quoted) or a list of such strings; ``ParameterKey=K,ParameterValue=V`` also works."""
    texts = [value] if isinstance(value, str) else list(value)
    pairs: dict[str, str] = {}
    for text in texts:
        try:
            tokens = shlex.split(text)
        except ValueError as problem:
            raise TemplateError(f"parameter_overrides {text!r}: {problem}") from None
        for token in tokens:
            long_form = _KEY_VALUE_FORM.fullmatch(token)
            if long_form is not None:
                pairs[long_form["key"]] = long_form["value"]
                continue
            key, equals, parameter_value = token.partition("=")
            if not equals or not key:
                raise TemplateError(f"parameter_overrides: {token!r} is not Key=Value")
            pairs[key] = parameter_value
    return pairs


SAMCONFIG_SECTIONS: Final = ("global", "deploy", "local_invoke")
"""The samconfig.toml command sections read, later ones winning per key: the deployed
configuration, with what ``sam local invoke`` itself would add."""


@dataclass(frozen=True, slots=True)
class SamConfig:
    """What samconfig.toml says for one config env (empty when the file is missing)."""

    config_env: str
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    stack_name: str | None = None
    region: str | None = None


def read_samconfig(
    path: str | Path,
    config_env: str = "default",
    sections: Sequence[str] = SAMCONFIG_SECTIONS,
) -> SamConfig:
    """``[<config_env>.<section>.parameters]`` of samconfig.toml, sections merged in order.

    A missing file reads as empty for the ``default`` env; asking for another env that the file
    does not have raises :class:`TemplateError`.
    """
    file = Path(path)
    if not file.exists():
        if config_env == "default":
            return SamConfig(config_env)
        raise TemplateError(f"{file}: no such file (asked for config env {config_env!r})")
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as problem:
        raise TemplateError(f"{file}: {problem}") from None
    environment = document.get(config_env)
    if not isinstance(environment, dict):
        if config_env == "default":
            return SamConfig(config_env)
        raise TemplateError(f"{file} has no [{config_env}.*] config env")
    overrides: dict[str, str] = {}
    stack_name: str | None = None
    region: str | None = None
    for section in sections:
        parameters = (environment.get(section) or {}).get("parameters") or {}
        if "parameter_overrides" in parameters:
            overrides.update(parse_parameter_overrides(parameters["parameter_overrides"]))
        stack_name = parameters.get("stack_name", stack_name)
        region = parameters.get("region", region)
    return SamConfig(config_env, overrides, stack_name, region)


# Intrinsic functions.


class _NoValue:
    """AWS::NoValue: the property or list item it stands for is left out."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()
"""What :meth:`IntrinsicResolver.resolve` returns for ``Ref: AWS::NoValue`` at the top level."""


def partition_of(region: str) -> str:
    """The AWS partition a region belongs to."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass(frozen=True, slots=True)
class PseudoParameters:
    """AWS::Region, AWS::AccountId, AWS::StackName and the rest, for one (local) stack."""

    region: str
    account_id: str
    stack_name: str

    @property
    def partition(self) -> str:
        return partition_of(self.region)

    @property
    def stack_id(self) -> str:
        return (
            f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}:stack/"
            f"{self.stack_name}/00000000-0000-0000-0000-000000000000"
        )

    def value(self, name: str) -> Any:
        """The pseudo parameter's value; raises KeyError for a name that is none."""
        values: dict[str, Any] = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::Partition": self.partition,
            "AWS::StackId": self.stack_id,
            "AWS::URLSuffix": "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        return values[name]


@dataclass(frozen=True, slots=True)
class ResourceAttributes:
    """What Ref and Fn::GetAtt give for one resource of the (local) stack."""

    type: str
    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "ref": self.ref, "attributes": dict(self.attributes)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResourceAttributes:
        return cls(str(data["type"]), str(data["ref"]), dict(data.get("attributes") or {}))


_SUB_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")


def _is_intrinsic(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) != 1:
        return False
    [key] = value
    return key == "Ref" or (isinstance(key, str) and key.startswith("Fn::"))


class IntrinsicResolver:
    """Resolves intrinsic functions against parameters, pseudo parameters and resources.

    ``resources`` maps logical ids to what Ref and Fn::GetAtt give (the local stack's resources).
    A Ref or GetAtt of anything else raises :class:`TemplateError` naming it.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, ParameterValue],
        pseudo: PseudoParameters,
        resources: Mapping[str, ResourceAttributes] | None = None,
    ) -> None:
        self.template = template
        self.parameters = dict(parameters)
        self.pseudo = pseudo
        self.resources: dict[str, ResourceAttributes] = dict(resources or {})
        self._conditions: dict[str, bool] = {}
        self._evaluating: list[str] = []

    # Conditions.

    def condition(self, name: str) -> bool:
        """The value of the template's condition ``name`` (evaluated once)."""
        if name in self._conditions:
            return self._conditions[name]
        declared = self.template.get("Conditions") or {}
        if name not in declared:
            raise TemplateError(f"condition {name}: not in the template's Conditions")
        if name in self._evaluating:
            cycle = " -> ".join([*self._evaluating, name])
            raise TemplateError(f"condition {name}: refers to itself ({cycle})")
        self._evaluating.append(name)
        try:
            value = self._truth(declared[name], f"condition {name}")
        finally:
            self._evaluating.pop()
        self._conditions[name] = value
        return value

    def _truth(self, value: Any, where: str) -> bool:
        if isinstance(value, dict) and set(value) == {"Condition"}:
            return self.condition(str(value["Condition"]))
        resolved = self.resolve(value)
        if isinstance(resolved, bool):
            return resolved
        if resolved in ("true", "false"):
            return bool(resolved == "true")
        raise TemplateError(f"{where}: expected a condition, got {resolved!r}")

    def resource_enabled(self, logical_id: str) -> bool:
        """Whether the resource exists for these parameters (its Condition, when it has one)."""
        body = (self.template.get("Resources") or {}).get(logical_id) or {}
        condition = body.get("Condition")
        return True if condition is None else self.condition(str(condition))

    # Rules.

    def check_rules(self) -> None:
        """Evaluate the template's Rules as CloudFormation does before creating anything.

        Raises :class:`TemplateError` with the rule's name and AssertDescription when an
        assertion fails.
        """
        for name, rule in (self.template.get("Rules") or {}).items():
            rule_condition = rule.get("RuleCondition")
            if rule_condition is not None and not self._truth(rule_condition, f"rule {name}"):
                continue
            for assertion in rule.get("Assertions") or []:
                if not self._truth(assertion["Assert"], f"rule {name}"):
                    description = assertion.get("AssertDescription", "assertion failed")
                    raise TemplateError(f"rule {name}: {description}")

    # Values.

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by its result.

        Mapping entries and list items that resolve to AWS::NoValue are left out.
        """
        if _is_intrinsic(value):
            [(name, argument)] = value.items()
            return self._function(name, argument)
        if isinstance(value, dict):
            resolved_map = {key: self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved_map.items() if item is not NO_VALUE}
        if isinstance(value, list):
            resolved_list = [self.resolve(item) for item in value]
            return [item for item in resolved_list if item is not NO_VALUE]
        return value

    def text(self, value: Any, where: str) -> str:
        """``value`` resolved to one string (numbers and booleans as CloudFormation writes them)."""
        resolved = self.resolve(value)
        if isinstance(resolved, list | dict) or resolved is NO_VALUE:
            raise TemplateError(f"{where}: expected a string, got {resolved!r}")
        return cfn_text(resolved)

    def _list(self, value: Any, where: str) -> list[Any]:
        resolved = self.resolve(value)
        if not isinstance(resolved, list):
            raise TemplateError(f"{where}: expected a list, got {resolved!r}")
        return resolved

    def _function(self, name: str, argument: Any) -> Any:
        handlers = {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::If": self._if,
            "Fn::Equals": self._equals,
            "Fn::Not": self._not,
            "Fn::And": self._and,
            "Fn::Or": self._or,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::Base64": self._base64,
            "Fn::Contains": self._contains,
            "Fn::Length": self._length,
            "Fn::ToJsonString": self._to_json_string,
        }
        handler = handlers.get(name)
        if handler is None:
            raise TemplateError(f"{name}: not supported by the local resolver")
        return handler(argument)

    def _arguments(self, name: str, argument: Any, count: int | tuple[int, ...]) -> list[Any]:
        counts = (count,) if isinstance(count, int) else count
        if not isinstance(argument, list) or len(argument) not in counts:
            wanted = " or ".join(str(c) for c in counts)
            raise TemplateError(f"{name}: takes a list of {wanted} items, got {argument!r}")
        return argument

    def _ref(self, argument: Any) -> Any:
        name = self.text(argument, "Ref")
        if name in self.parameters:
            return self.parameters[name]
        if name.startswith("AWS::"):
            try:
                return self.pseudo.value(name)
            except KeyError:
                raise TemplateError(f"Ref {name}: not a pseudo parameter") from None
        if name in self.resources:
            return self.resources[name].ref
        return self._missing_resource("Ref", name)

    def _missing_resource(self, function: str, name: str) -> Any:
        declared = (self.template.get("Resources") or {}).get(name)
        if declared is None:
            raise TemplateError(f"{function} {name}: no such parameter or resource")
        raise TemplateError(
            f"{function} {name}: the local stack has no {declared.get('Type')} {name}"
        )

    def _get_att(self, argument: Any) -> Any:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        resource, attribute = self._arguments("Fn::GetAtt", argument, 2)
        resource = self.text(resource, "Fn::GetAtt")
        attribute = self.text(attribute, "Fn::GetAtt")
        found = self.resources.get(resource)
        if found is None:
            return self._missing_resource("Fn::GetAtt", f"{resource}")
        if attribute not in found.attributes:
            raise TemplateError(
                f"Fn::GetAtt {resource}.{attribute}: {found.type} {resource} has no attribute "
                f"{attribute} locally (it has {', '.join(sorted(found.attributes)) or 'none'})"
            )
        return found.attributes[attribute]

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, str):
            template_text, variables = argument, {}
        else:
            template_text, raw_variables = self._arguments("Fn::Sub", argument, 2)
            if not isinstance(template_text, str) or not isinstance(raw_variables, dict):
                raise TemplateError(f"Fn::Sub: expected [string, mapping], got {argument!r}")
            variables = {
                key: self.text(item, f"Fn::Sub variable {key}")
                for key, item in raw_variables.items()
            }

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal} writes ${Literal}
            if name in variables:
                return variables[name]
            if "." in name and not name.startswith("AWS::"):
                return self.text({"Fn::GetAtt": name.split(".", 1)}, f"Fn::Sub ${{{name}}}")
            return self.text({"Ref": name}, f"Fn::Sub ${{{name}}}")

        return _SUB_VARIABLE.sub(replace, template_text)

    def _if(self, argument: Any) -> Any:
        condition, when_true, when_false = self._arguments("Fn::If", argument, 3)
        chosen = when_true if self.condition(self.text(condition, "Fn::If")) else when_false
        return self.resolve(chosen)

    def _equals(self, argument: Any) -> bool:
        left, right = self._arguments("Fn::Equals", argument, 2)
        return bool(_comparable(self.resolve(left)) == _comparable(self.resolve(right)))

    def _not(self, argument: Any) -> bool:
        [operand] = self._arguments("Fn::Not", argument, 1)
        return not self._truth(operand, "Fn::Not")

    def _and(self, argument: Any) -> bool:
        operands = self._arguments("Fn::And", argument, tuple(range(2, 11)))
        return all(self._truth(operand, "Fn::And") for operand in operands)

    def _or(self, argument: Any) -> bool:
        operands = self._arguments("Fn::Or", argument, tuple(range(2, 11)))
        return any(self._truth(operand, "Fn::Or") for operand in operands)

    def _find_in_map(self, argument: Any) -> Any:
        items = self._arguments("Fn::FindInMap", argument, (3, 4))
        map_name = self.text(items[0], "Fn::FindInMap")
        top = self.text(items[1], "Fn::FindInMap")
        second = self.text(items[2], "Fn::FindInMap")
        mapping = (self.template.get("Mappings") or {}).get(map_name)
        if mapping is None:
            raise TemplateError(f"Fn::FindInMap: no mapping {map_name}")
        # YAML reads unquoted keys such as 15 as numbers; CloudFormation's keys are strings.
        level = {cfn_text(key): value for key, value in mapping.items()}.get(top)
        found = None
        if isinstance(level, dict):
            found = {cfn_text(key): value for key, value in level.items()}.get(second)
        if found is None:
            if len(items) == 4 and isinstance(items[3], dict) and "DefaultValue" in items[3]:
                return self.resolve(items[3]["DefaultValue"])
            raise TemplateError(f"Fn::FindInMap: mapping {map_name} has no [{top}][{second}]")
        return found

    def _join(self, argument: Any) -> str:
        delimiter, values = self._arguments("Fn::Join", argument, 2)
        items = self._list(values, "Fn::Join")
        return self.text(delimiter, "Fn::Join").join(cfn_text(item) for item in items)

    def _select(self, argument: Any) -> Any:
        index, values = self._arguments("Fn::Select", argument, 2)
        position = self.text(index, "Fn::Select")
        items = self._list(values, "Fn::Select")
        try:
            chosen = int(position)
        except ValueError:
            raise TemplateError(f"Fn::Select: index {position!r} is not a number") from None
        if not 0 <= chosen < len(items):
            raise TemplateError(f"Fn::Select: index {chosen} is not within the {len(items)} items")
        return items[chosen]

    def _split(self, argument: Any) -> list[str]:
        delimiter, source = self._arguments("Fn::Split", argument, 2)
        return self.text(source, "Fn::Split").split(self.text(delimiter, "Fn::Split"))

    def _base64(self, argument: Any) -> str:
        return base64.b64encode(self.text(argument, "Fn::Base64").encode()).decode()

    def _contains(self, argument: Any) -> bool:
        values, wanted = self._arguments("Fn::Contains", argument, 2)
        items = self._list(values, "Fn::Contains")
        return _comparable(self.resolve(wanted)) in [_comparable(item) for item in items]

    def _length(self, argument: Any) -> int:
        return len(self._list(argument, "Fn::Length"))

    def _to_json_string(self, argument: Any) -> str:
        return json.dumps(self.resolve(argument), separators=(",", ":"))


def _comparable(value: Any) -> Any:
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    if isinstance(value, dict):
        return value
    return cfn_text(value)


def references(value: Any) -> Iterator[str]:
    """Every name ``value`` refers to with Ref, Fn::GetAtt or a Fn::Sub variable."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                yield item
            elif key == "Fn::GetAtt":
                parts = item.split(".", 1) if isinstance(item, str) else item
                if parts and isinstance(parts[0], str):
                    yield parts[0]
            elif key == "Fn::Sub":
                text = item if isinstance(item, str) else (item[0] if item else "")
                if isinstance(text, str):
                    for match in _SUB_VARIABLE.finditer(text):
                        name = match.group(1).strip()
                        if not name.startswith("!"):
                            yield name.split(".", 1)[0]
                if isinstance(item, list):
                    yield from references(item[1:])
            else:
                yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def creation_order(template: Mapping[str, Any], logical_ids: Iterable[str]) -> list[str]:
    """``logical_ids`` ordered so each comes after the ones it refers to (Ref, GetAtt, Sub,
    DependsOn); raises :class:`TemplateError` on a cycle among them."""
    resources = template.get("Resources") or {}
    wanted = list(logical_ids)
    chosen = set(wanted)
    ordered: list[str] = []
    state: dict[str, str] = {}

    def visit(logical_id: str, path: list[str]) -> None:
        if state.get(logical_id) == "done":
            return
        if state.get(logical_id) == "visiting":
            raise TemplateError(f"resources refer to each other: {' -> '.join(path)}")
        state[logical_id] = "visiting"
        body = resources.get(logical_id) or {}
        depends = body.get("DependsOn") or []
        depends = [depends] if isinstance(depends, str) else list(depends)
        for dependency in [*references(body.get("Properties") or {}), *depends]:
            if dependency in chosen and dependency != logical_id:
                visit(dependency, [*path, dependency])
        state[logical_id] = "done"
        ordered.append(logical_id)

    for logical_id in wanted:
        visit(logical_id, [logical_id])
    return ordered


# Functions (AWS::Serverless::Function with SAM's Globals).

SERVERLESS_FUNCTION: Final = "AWS::Serverless::Function"
SERVERLESS_LAYER: Final = "AWS::Serverless::LayerVersion"
LOG_GROUP: Final = "AWS::Logs::LogGroup"


def physical_name(stack_name: str, logical_id: str) -> str:
    """The name the local stack gives a resource that names none itself: ``<stack>-<id>``
    (CloudFormation appends a random suffix too; locally the name is predictable)."""
    return f"{stack_name}-{logical_id}"


def derived_resource_attributes(
    template: Mapping[str, Any], pseudo: PseudoParameters
) -> dict[str, ResourceAttributes]:
    """Ref and Fn::GetAtt of the functions, layers and log groups, which the local stack does not
    create but whose names and ARNs follow from the stack name (a name property wins)."""
    prefix = f"arn:{pseudo.partition}"
    found: dict[str, ResourceAttributes] = {}
    for logical_id, body in (template.get("Resources") or {}).items():
        kind = body.get("Type")
        properties = body.get("Properties") or {}
        if kind in (SERVERLESS_FUNCTION, "AWS::Lambda::Function"):
            name = _literal(properties.get("FunctionName")) or physical_name(
                pseudo.stack_name, logical_id
            )
            arn = f"{prefix}:lambda:{pseudo.region}:{pseudo.account_id}:function:{name}"
            found[logical_id] = ResourceAttributes(kind, name, {"Arn": arn})
        elif kind in (SERVERLESS_LAYER, "AWS::Lambda::LayerVersion"):
            name = _literal(properties.get("LayerName")) or physical_name(
                pseudo.stack_name, logical_id
            )
            arn = f"{prefix}:lambda:{pseudo.region}:{pseudo.account_id}:layer:{name}:1"
            found[logical_id] = ResourceAttributes(kind, arn, {"LayerVersionArn": arn})
        elif kind == LOG_GROUP:
            name = _literal(properties.get("LogGroupName")) or physical_name(
                pseudo.stack_name, logical_id
            )
            arn = f"{prefix}:logs:{pseudo.region}:{pseudo.account_id}:log-group:{name}:*"
            found[logical_id] = ResourceAttributes(kind, name, {"Arn": arn})
    return found


def _literal(value: Any) -> str | None:
    return value if isinstance(value, str) else None


_SAM_DEFAULT_TIMEOUT_SECONDS: Final = 3
_SAM_DEFAULT_MEMORY_MB: Final = 128


def merge_globals(global_value: Any, own_value: Any) -> Any:
    """SAM's Globals rule: maps merge (the function's keys win), lists concatenate (Globals
    first), anything else (intrinsic functions included) is the function's own."""
    if (
        isinstance(global_value, dict)
        and isinstance(own_value, dict)
        and not _is_intrinsic(global_value)
        and not _is_intrinsic(own_value)
    ):
        merged = dict(global_value)
        for key, item in own_value.items():
            merged[key] = merge_globals(global_value[key], item) if key in global_value else item
        return merged
    if isinstance(global_value, list) and isinstance(own_value, list):
        return [*global_value, *own_value]
    return own_value


@dataclass(frozen=True, slots=True)
class LayerReference:
    """One of a function's Layers: a layer of this template (``logical_id``, ``content_uri``) or
    one from elsewhere (``arn``), which the local invoke cannot fetch."""

    logical_id: str | None = None
    content_uri: str | None = None
    arn: str | None = None


@dataclass(frozen=True, slots=True)
class SqsEvent:
    """A function's ``Type: SQS`` event: the event source mapping Lambda creates."""

    name: str
    queue_arn: str
    batch_size: int = 10
    maximum_batching_window_seconds: int = 0
    report_batch_item_failures: bool = False
    maximum_concurrency: int | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """A function's configuration after Globals, parameters and intrinsics."""

    logical_id: str
    handler: str
    code_uri: str
    runtime: str
    timeout_seconds: int
    memory_size_mb: int
    environment: dict[str, str]
    layers: tuple[LayerReference, ...] = ()
    architectures: tuple[str, ...] = ("x86_64",)
    tracing: str | None = None
    log_group_name: str | None = None
    sqs_events: tuple[SqsEvent, ...] = ()


def function_config(
    template: Mapping[str, Any], resolver: IntrinsicResolver, logical_id: str
) -> FunctionConfig:
    """The configuration of the template's function ``logical_id``.

    Raises :class:`TemplateError` naming the function when it is missing, is not an
    AWS::Serverless::Function, or lacks what a zip-packaged function needs.
    """
    resources = template.get("Resources") or {}
    body = resources.get(logical_id)
    where = f"function {logical_id}"
    if body is None:
        functions = [k for k, v in resources.items() if v.get("Type") == SERVERLESS_FUNCTION]
        raise TemplateError(f"{where}: not in the template (functions: {', '.join(functions)})")
    if body.get("Type") != SERVERLESS_FUNCTION:
        raise TemplateError(f"{where}: is a {body.get('Type')}, not a {SERVERLESS_FUNCTION}")
    if not resolver.resource_enabled(logical_id):
        raise TemplateError(f"{where}: its Condition is false for these parameters")
    global_properties = ((template.get("Globals") or {}).get("Function")) or {}
    properties = merge_globals(global_properties, body.get("Properties") or {})
    if properties.get("PackageType", "Zip") != "Zip":
        raise TemplateError(f"{where}: only Zip packages run locally")
    for required in ("Handler", "CodeUri", "Runtime"):
        if required not in properties:
            raise TemplateError(f"{where}: has no {required}")

    variables = resolver.resolve((properties.get("Environment") or {}).get("Variables") or {})
    if not isinstance(variables, dict):
        raise TemplateError(f"{where}: Environment.Variables must be a mapping")
    environment = {str(name): cfn_text(value) for name, value in variables.items()}

    layers: list[LayerReference] = []
    for entry in properties.get("Layers") or []:
        if isinstance(entry, dict) and set(entry) == {"Ref"}:
            layer_body = resources.get(entry["Ref"]) or {}
            if layer_body.get("Type") == SERVERLESS_LAYER:
                content = (layer_body.get("Properties") or {}).get("ContentUri")
                layers.append(
                    LayerReference(
                        logical_id=entry["Ref"],
                        content_uri=resolver.text(content, f"layer {entry['Ref']} ContentUri"),
                    )
                )
                continue
        layers.append(LayerReference(arn=resolver.text(entry, f"{where} Layers")))

    logging_config = resolver.resolve(properties.get("LoggingConfig") or {})
    tracing = resolver.resolve(properties.get("Tracing"))
    return FunctionConfig(
        logical_id=logical_id,
        handler=resolver.text(properties["Handler"], f"{where} Handler"),
        code_uri=resolver.text(properties["CodeUri"], f"{where} CodeUri"),
        runtime=resolver.text(properties["Runtime"], f"{where} Runtime"),
        timeout_seconds=_integer(
            resolver, properties.get("Timeout", _SAM_DEFAULT_TIMEOUT_SECONDS), f"{where} Timeout"
        ),
        memory_size_mb=_integer(
            resolver, properties.get("MemorySize", _SAM_DEFAULT_MEMORY_MB), f"{where} MemorySize"
        ),
        environment=environment,
        layers=tuple(layers),
        architectures=tuple(
            cfn_text(a) for a in resolver.resolve(properties.get("Architectures") or ["x86_64"])
        ),
        tracing=None if tracing in (None, NO_VALUE) else cfn_text(tracing),
        log_group_name=(
            cfn_text(logging_config["LogGroup"]) if "LogGroup" in logging_config else None
        ),
        sqs_events=tuple(_sqs_events(resolver, properties.get("Events") or {}, where)),
    )


def _integer(resolver: IntrinsicResolver, value: Any, where: str) -> int:
    text = resolver.text(value, where)
    try:
        number = float(text)
    except ValueError:
        raise TemplateError(f"{where}: {text!r} is not a number") from None
    if not number.is_integer():
        raise TemplateError(f"{where}: {text!r} is not a whole number")
    return int(number)


def _sqs_events(
    resolver: IntrinsicResolver, events: Mapping[str, Any], where: str
) -> Iterator[SqsEvent]:
    for name, event in events.items():
        if event.get("Type") != "SQS":
            continue
        properties = resolver.resolve(event.get("Properties") or {})
        scaling = properties.get("ScalingConfig") or {}
        concurrency = scaling.get("MaximumConcurrency")
        yield SqsEvent(
            name=name,
            queue_arn=cfn_text(properties["Queue"]),
            batch_size=_integer(resolver, properties.get("BatchSize", 10), f"{where} {name}"),
            maximum_batching_window_seconds=_integer(
                resolver,
                properties.get("MaximumBatchingWindowInSeconds", 0),
                f"{where} {name} MaximumBatchingWindowInSeconds",
            ),
            report_batch_item_failures="ReportBatchItemFailures"
            in (properties.get("FunctionResponseTypes") or []),
            maximum_concurrency=None if concurrency is None else int(cfn_text(concurrency)),
            enabled=cfn_text(properties.get("Enabled", True)) == "true",
        )
