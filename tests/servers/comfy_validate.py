"""``POST /prompt`` validation as ComfyUI 0.3.64 does it, producing the same 400 bodies.

Follows ``execution.validate_prompt`` / ``validate_inputs``: unknown or missing class fails the whole
prompt; each output node's upstream graph is validated; if at least one output validates the prompt
is accepted and ``node_errors`` lists the others. Inputs are checked in ``input_order``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PRIMITIVE_CASTS: dict[str, Callable[[Any], Any]] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


class PromptInvalid(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body["error"]["message"])
        self.body = body


def _top_error(type_: str, message: str, details: str) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message, "details": details, "extra_info": {}}, "node_errors": {}}


def combo_choices(spec: list[Any]) -> list[Any] | None:
    kind = spec[0]
    if isinstance(kind, list):
        return kind
    if kind == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        return list(spec[1].get("options", []))
    return None


class Validator:
    def __init__(
        self,
        object_info: dict[str, Any],
        custom_checks: dict[str, Callable[[str, Any], str | None]] | None = None,
    ) -> None:
        self.object_info = object_info
        # class_type -> check(input_name, value) -> error details or None (ComfyUI's VALIDATE_INPUTS)
        self.custom_checks = custom_checks or {}

    def validate(self, prompt: Any, partial_targets: list[str] | None) -> tuple[list[str], dict[str, Any]]:
        """Returns (outputs to execute, node_errors) or raises PromptInvalid with the 400 body."""
        if not isinstance(prompt, dict):
            raise PromptInvalid(_top_error("invalid_prompt", "Prompt is not a dictionary", ""))
        outputs: list[str] = []
        for node_id, node in prompt.items():
            if not isinstance(node, dict) or "class_type" not in node:
                raise PromptInvalid(
                    _top_error(
                        "invalid_prompt",
                        "Cannot execute because a node is missing the class_type property.",
                        f"Node ID '#{node_id}'",
                    )
                )
            info = self.object_info.get(node["class_type"])
            if info is None:
                raise PromptInvalid(
                    _top_error(
                        "invalid_prompt",
                        f"Cannot execute because node {node['class_type']} does not exist.",
                        f"Node ID '#{node_id}'",
                    )
                )
            if info.get("output_node") and (partial_targets is None or node_id in partial_targets):
                outputs.append(node_id)
        if not outputs:
            raise PromptInvalid(_top_error("prompt_no_outputs", "Prompt has no outputs", ""))

        validated: dict[str, tuple[bool, list[dict[str, Any]]]] = {}
        good: list[str] = []
        output_errors: list[tuple[str, list[dict[str, Any]]]] = []
        node_errors: dict[str, Any] = {}
        for output_id in outputs:
            ok, reasons = self._validate_node(prompt, output_id, validated)
            if ok:
                good.append(output_id)
            else:
                output_errors.append((output_id, reasons))
                for node_id, (node_ok, node_reasons) in validated.items():
                    if node_ok or not node_reasons:
                        continue
                    entry = node_errors.setdefault(
                        node_id,
                        {"errors": node_reasons, "dependent_outputs": [], "class_type": prompt[node_id]["class_type"]},
                    )
                    if output_id not in entry["dependent_outputs"]:
                        entry["dependent_outputs"].append(output_id)
        if not good:
            details = "\n".join(f"{e['message']}: {e['details']}" for _, errs in output_errors for e in errs)
            body = {
                "error": {
                    "type": "prompt_outputs_failed_validation",
                    "message": "Prompt outputs failed validation",
                    "details": details,
                    "extra_info": {},
                },
                "node_errors": node_errors,
            }
            raise PromptInvalid(body)
        return good, node_errors

    def _validate_node(
        self, prompt: dict[str, Any], node_id: str, validated: dict[str, tuple[bool, list[dict[str, Any]]]]
    ) -> tuple[bool, list[dict[str, Any]]]:
        if node_id in validated:
            return validated[node_id]
        node = prompt[node_id]
        class_type = node["class_type"]
        info = self.object_info[class_type]
        inputs = node.get("inputs", {})
        errors: list[dict[str, Any]] = []
        valid = True
        order = info.get("input_order", {})
        names = list(order.get("required", [])) + list(order.get("optional", []))
        for name in names:
            section = "required" if name in info["input"].get("required", {}) else "optional"
            spec = info["input"][section][name]
            spec = list(spec) if len(spec) > 1 else [spec[0], {}]
            if name not in inputs:
                if section == "required":
                    errors.append(
                        {
                            "type": "required_input_missing",
                            "message": "Required input is missing",
                            "details": name,
                            "extra_info": {"input_name": name},
                        }
                    )
                continue
            value = inputs[name]
            if isinstance(value, list):
                link_ok = self._check_link(prompt, name, spec, value, errors, validated)
                valid = valid and link_ok
                continue
            error = self._check_literal(class_type, name, spec, value)
            if error:
                errors.append(error)
        ok = valid and not errors
        validated[node_id] = (ok, errors)
        return ok, errors

    def _check_link(
        self,
        prompt: dict[str, Any],
        name: str,
        spec: list[Any],
        value: list[Any],
        errors: list[dict[str, Any]],
        validated: dict[str, tuple[bool, list[dict[str, Any]]]],
    ) -> bool:
        if len(value) != 2:
            errors.append(
                {
                    "type": "bad_linked_input",
                    "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    "details": name,
                    "extra_info": {"input_name": name, "input_config": spec, "received_value": value},
                }
            )
            return True
        source_id, slot = str(value[0]), value[1]
        source = prompt.get(source_id)
        if source is None:
            errors.append(
                {
                    "type": "bad_linked_input",
                    "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    "details": name,
                    "extra_info": {"input_name": name, "input_config": spec, "received_value": value},
                }
            )
            return True
        source_info = self.object_info[source["class_type"]]
        outputs = source_info.get("output", [])
        received = outputs[slot] if isinstance(slot, int) and 0 <= slot < len(outputs) else None
        expected = spec[0]
        if isinstance(expected, str) and received is not None and not _types_match(received, expected):
            details = f"{name}, received_type({received}) mismatch input_type({expected})"
            errors.append(
                {
                    "type": "return_type_mismatch",
                    "message": "Return type mismatch between linked nodes",
                    "details": details,
                    "extra_info": {
                        "input_name": name,
                        "input_config": spec,
                        "received_type": received,
                        "linked_node": value,
                    },
                }
            )
            return True
        ok, _ = self._validate_node(prompt, source_id, validated)
        return ok

    def _check_literal(self, class_type: str, name: str, spec: list[Any], value: Any) -> dict[str, Any] | None:
        kind = spec[0]
        options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        check = self.custom_checks.get(class_type)
        if check is not None:
            details = check(name, value)
            if details:
                return {
                    "type": "custom_validation_failed",
                    "message": "Custom validation failed for node",
                    "details": f"{name} - {details}",
                    "extra_info": {"input_name": name},
                }
            return None
        cast = PRIMITIVE_CASTS.get(kind) if isinstance(kind, str) else None
        if cast is not None:
            try:
                value = cast(value)
            except (TypeError, ValueError) as err:
                return {
                    "type": "invalid_input_type",
                    "message": f"Failed to convert an input value to a {kind} value",
                    "details": f"{name}, {value}, {err}",
                    "extra_info": {
                        "input_name": name,
                        "input_config": spec,
                        "received_value": value,
                        "exception_message": str(err),
                    },
                }
            if "min" in options and value < options["min"]:
                return _range_error("value_smaller_than_min", f"Value {value} smaller than min of {options['min']}",
                                    name, spec, value)
            if "max" in options and value > options["max"]:
                return _range_error("value_bigger_than_max", f"Value {value} bigger than max of {options['max']}",
                                    name, spec, value)
            return None
        choices = combo_choices(spec)
        if choices is not None and value not in choices:
            shown = f"(list of length {len(choices)})" if len(choices) > 20 else str(choices)
            return {
                "type": "value_not_in_list",
                "message": "Value not in list",
                "details": f"{name}: '{value}' not in {shown}",
                "extra_info": {"input_name": name, "input_config": spec, "received_value": value},
            }
        return None


def _range_error(type_: str, message: str, name: str, spec: list[Any], value: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "message": message,
        "details": name,
        "extra_info": {"input_name": name, "input_config": spec, "received_value": value},
    }


def _types_match(received: str, expected: str) -> bool:
    if "*" in (received, expected):
        return True
    return bool(set(received.split(",")) & set(expected.split(",")))
