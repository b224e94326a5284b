"""POST /prompt validation with the error shapes recorded from ComfyUI 0.3.64.

The rules are reconstructed from ``traces/invalid.jsonl`` and ``traces/validation_extra.json``:
whole-prompt errors first (missing/unknown class_type, no outputs), then every output node is
validated recursively; a prompt with at least one valid output is accepted and only the valid
outputs run.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .nodes import InputSpec, NodeClass, coerce_widget
from .variants import V0_3_64, Variant

Error = dict[str, Any]


def full_type_name(exc: BaseException) -> str:
    """``RuntimeError`` for builtins, ``module.Qualname`` otherwise (as ComfyUI reports it)."""
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def error(kind: str, message: str, details: str = "", extra: dict[str, Any] | None = None) -> Error:
    return {"type": kind, "message": message, "details": details, "extra_info": extra or {}}


@dataclass
class ValidationResult:
    """``error`` set means HTTP 400; otherwise ``outputs`` lists the outputs that will run."""

    error: Error | None = None
    node_errors: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)


class CycleError(RuntimeError):
    """A link loop; ComfyUI 0.3.64 would recurse forever, newer servers call it dependency_cycle."""


class PromptValidator:
    """Validates one API-format prompt against the simulated node catalog."""

    def __init__(
        self, prompt: dict[str, Any], catalog: dict[str, NodeClass], traits: Variant = V0_3_64
    ) -> None:
        self.prompt = prompt
        self.catalog = catalog
        self.traits = traits
        self.validated: dict[Any, tuple[bool, list[Error]]] = {}
        self._active: set[Any] = set()

    def validate(self, targets: Iterable[Any] | None = None) -> ValidationResult:
        shape_error = self._check_classes()
        if shape_error:
            return ValidationResult(error=shape_error)
        outputs = self._outputs(targets)
        if not outputs:
            return ValidationResult(error=error("prompt_no_outputs", "Prompt has no outputs"))
        good, failed = [], []
        for out in outputs:
            if self._validate_output(out):
                good.append(out)
            else:
                failed.append(out)
        node_errors = self._node_errors(failed)
        if good:
            return ValidationResult(node_errors=node_errors, outputs=good)
        lines = [f"{e['message']}: {e['details']}" for o in failed for e in self.validated[o][1]]
        top = error("prompt_outputs_failed_validation", "Prompt outputs failed validation")
        top["details"] = "\n".join(lines)
        if self.traits.validation_extra_info:
            top["extra_info"] = self._failure_info(failed, node_errors)
        return ValidationResult(error=top, node_errors=node_errors)

    def _failure_info(self, failed: list[str], node_errors: dict[str, Any]) -> dict[str, Any]:
        """The fork's extra_info: the exception that failed validation and the node errors
        again. An exception during validation is named as such, else a ValidationError raised
        right here (its traceback is the stack, as the fork's is)."""
        for out in failed:
            for err in self.validated[out][1]:
                if err["type"] == "exception_during_validation":
                    info = dict(err["extra_info"])
                    return {**info, "node_errors": node_errors}
        stack = traceback.format_stack()
        return {"exception_type": "ValidationError", "traceback": stack, "node_errors": node_errors}

    # ----------------------------------------------------------------------- whole prompt

    def _check_classes(self) -> Error | None:
        for node_id, node in self.prompt.items():
            if not isinstance(node, dict) or "class_type" not in node:
                return self._class_error(node_id, node, None)
            class_type = node["class_type"]
            if not isinstance(class_type, str) or class_type not in self.catalog:
                return self._class_error(node_id, node, class_type)
        return None

    def _class_error(self, node_id: str, node: Any, class_type: Any) -> Error:
        """0.3.64's invalid_prompt, or the newer missing_node_type (texts: the fork's)."""
        where = f"Node ID '#{node_id}'"
        missing = not isinstance(node, dict) or "class_type" not in node
        if not self.traits.missing_node_type:
            if missing:
                message = "Cannot execute because a node is missing the class_type property."
            else:
                message = f"Cannot execute because node {class_type} does not exist."
            return error("invalid_prompt", message, where)
        meta = node.get("_meta") if isinstance(node, dict) else None
        title = meta.get("title") if isinstance(meta, dict) else None
        if missing:
            message = (
                f"Node 'ID #{node_id}' has no class_type. "
                "The workflow may be corrupted or a custom node is missing."
            )
        else:
            message = f"Node '{class_type}' not found. The custom node may not be installed."
            title = title or class_type
        extra = {"node_id": node_id, "class_type": class_type, "node_title": title}
        return error("missing_node_type", message, where, extra)

    def _outputs(self, targets: Iterable[Any] | None) -> list[str]:
        wanted = None if targets is None else list(targets)
        return [
            node_id
            for node_id, node in self.prompt.items()
            if self.catalog[node["class_type"]].output_node
            and (wanted is None or node_id in wanted)
        ]

    def _validate_output(self, out: str) -> bool:
        try:
            return self._validate(out)
        except Exception as exc:  # noqa: BLE001 - becomes exception_during_validation
            self._active.clear()
            extra = {"exception_type": full_type_name(exc), "traceback": _tb(exc)}
            err = error("exception_during_validation", "Exception when validating node", str(exc))
            err["extra_info"] = extra
            self.validated[out] = (False, [err])
            return False

    def _node_errors(self, failed: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for node_id, (valid, errors) in self.validated.items():
            if valid or not errors:
                continue
            result[node_id] = {
                "errors": errors,
                "dependent_outputs": [o for o in failed if node_id in self._ancestors(o)],
                "class_type": self.prompt[node_id]["class_type"],
            }
        return result

    def _ancestors(self, node_id: Any) -> set[Any]:
        """``node_id`` and everything it links to (tolerating broken links)."""
        seen: set[Any] = set()
        stack = [node_id]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            node = self.prompt.get(current) if isinstance(current, str) else None
            inputs = node.get("inputs") if isinstance(node, dict) else None
            if isinstance(inputs, dict):
                links = [v[0] for v in inputs.values() if isinstance(v, list) and len(v) == 2]
                stack.extend(x for x in links if isinstance(x, str))
        return seen

    # ----------------------------------------------------------------------- one node

    def _validate(self, node_id: Any) -> bool:
        if node_id in self.validated:
            return self.validated[node_id][0]
        if node_id in self._active:
            raise CycleError(f"Dependency cycle detected at node {node_id}")
        self._active.add(node_id)
        node = self.prompt[node_id]
        inputs = node["inputs"]
        if not isinstance(inputs, dict):
            raise TypeError(f"inputs of node {node_id} must be an object")
        errors: list[Error] = []
        valid = True
        for spec in self.catalog[node["class_type"]].inputs:
            if spec.name not in inputs:
                if spec.required:
                    errors.append(_missing(spec.name))
                    valid = False
                continue
            value = inputs[spec.name]
            if isinstance(value, list):
                ok = self._check_link(spec, value, errors)
            else:
                ok = _check_widget(spec, value, errors)
            valid = valid and ok
        self._active.discard(node_id)
        self.validated[node_id] = (valid, errors)
        return valid

    def _check_link(self, spec: InputSpec, link: list[Any], errors: list[Error]) -> bool:
        if len(link) != 2:
            message = "Bad linked input, must be a length-2 list of [node_id, slot_index]"
            errors.append(error("bad_linked_input", message, spec.name, _extra(spec, link)))
            return False
        source, slot = link
        source_class = self.prompt[source]["class_type"]  # a missing node raises KeyError here
        received = self.catalog[source_class].return_types[slot]
        if received != spec.type and "*" not in (received, spec.type):
            details = f"{spec.name}, received_type({received}) mismatch input_type({spec.type})"
            extra = {"input_name": spec.name, "input_config": spec.config}
            extra.update(received_type=received, linked_node=link)
            message = "Return type mismatch between linked nodes"
            errors.append(error("return_type_mismatch", message, details, extra))
            return False
        outer = set(self._active)
        try:
            return self._validate(source)
        except Exception as exc:  # noqa: BLE001 - becomes exception_during_inner_validation
            self._active = outer  # forget the half-validated chain below this link
            extra = {"input_name": spec.name, "input_config": spec.config}
            extra.update(exception_message=str(exc), exception_type=full_type_name(exc))
            extra.update(traceback=_tb(exc), linked_node=link)
            message = "Exception when validating inner node"
            inner = error("exception_during_inner_validation", message, str(exc), extra)
            self.validated[source] = (False, [inner])
            return False


def _check_widget(spec: InputSpec, value: Any, errors: list[Error]) -> bool:
    kind = spec.type
    if isinstance(kind, list):
        if value not in kind:
            details = f"{spec.name}: '{value}' not in {kind}"
            errors.append(
                error("value_not_in_list", "Value not in list", details, _extra(spec, value))
            )
            return False
        return True
    try:
        value = coerce_widget(kind, value)
    except Exception as exc:  # noqa: BLE001 - int()/float() failures are invalid_input_type
        extra = _extra(spec, value)
        extra["exception_message"] = str(exc)
        message = f"Failed to convert an input value to a {kind} value"
        errors.append(error("invalid_input_type", message, f"{spec.name}, {value}, {exc}", extra))
        return False
    if kind not in ("INT", "FLOAT"):
        return True
    low, high = spec.options.get("min"), spec.options.get("max")
    if low is not None and value < low:
        message = f"Value {value} smaller than min of {low}"
        errors.append(error("value_smaller_than_min", message, spec.name, _extra(spec, value)))
        return False
    if high is not None and value > high:
        message = f"Value {value} bigger than max of {high}"
        errors.append(error("value_bigger_than_max", message, spec.name, _extra(spec, value)))
        return False
    return True


def _missing(name: str) -> Error:
    return error("required_input_missing", "Required input is missing", name, {"input_name": name})


def _extra(spec: InputSpec, value: Any) -> dict[str, Any]:
    return {"input_name": spec.name, "input_config": spec.config, "received_value": value}


def _tb(exc: BaseException) -> list[str]:
    return traceback.format_tb(exc.__traceback__)
