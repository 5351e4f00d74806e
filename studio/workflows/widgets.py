"""The widgets ComfyUI's editor gives one node, and the values they hold once a saved node is loaded.

A UI workflow stores widget values by position (``widgets_values``), so reading them back means
rebuilding the editor's widget list exactly: one widget per input whose type the editor draws
(numbers, text, toggles, combos and a few richer kinds), none for ``forceInput`` sockets, an extra
``control_after_generate`` combo after a seed, an upload button after a file picker, and for a
dynamic combo (``COMFY_DYNAMICCOMBO_V3``) the sub-widgets of the option it holds, named
``<combo>.<input>`` and inserted right after it the moment its value is set, so the values that
follow land on them. Everything is read from ``/object_info``; the few widgets the editor's own
extensions add to particular nodes are listed in ``EXTENSION_WIDGETS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
# Input types the editor draws as a widget holding a value that goes into the prompt.
VALUE_WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "COLOR", "CURVE", "BOUNDING_BOXES", "COMPOSITOR",
                 "COLORS", "AUDIO_RECORD", "LOAD_3D", "LOAD_3D_ANIMATION", "MARKDOWN"}
# Widgets the editor fills itself and never saves in widgets_values, with the value it sends.
UNSAVED_WIDGETS: dict[str, Any] = {"IMAGECOMPARE": ["", ""]}
LEGACY_SEEDS = ("seed", "noise_seed")
# A file picker (a combo) with one of these gets an upload button after it.
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")
# Widgets that frontend extensions add to particular nodes (not in /object_info): after which
# input, their names, and whether the prompt gets their value. ComfyUI itself never reads them.
EXTENSION_WIDGETS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "Load3D": ("model_file", ("upload 3d model", "upload extra resources", "clear"), True),
    "Load3DAnimation": ("model_file", ("upload 3d model", "upload extra resources", "clear"), True),
    "SaveGLB": ("", ("image",), True),
    "Preview3D": ("", ("image",), True),
    "Preview3DAnimation": ("", ("image",), True),
    "LoadAudio": ("", ("audioUI",), False),
}
# The node the editor's "custom combo" extension draws: its options are widgets of their own.
CUSTOM_COMBO = "CustomCombo"


@dataclass
class Widget:
    name: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    value: Any = None
    saved: bool = True  # it holds a slot in widgets_values
    sent: bool = True  # the prompt gets its value
    choices: dict[str, dict[str, Any]] | None = None  # a dynamic combo's options: key → their inputs

    def serialised(self) -> Any:
        """Lists are reserved for links in the API format, so the editor wraps a list value."""
        return {"__value__": self.value} if isinstance(self.value, list) else self.value


def spec_parts(spec: Any) -> tuple[str, dict[str, Any], list[Any] | None]:
    """(kind, options, combo values) of one ``/object_info`` input spec, whatever its form."""
    if not isinstance(spec, list) or not spec:
        return "", {}, None
    head = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if isinstance(head, list):
        return "COMBO", options, head
    kind = str(head)
    if kind == "COMBO":
        values = options.get("options")
        return kind, options, values if isinstance(values, list) else []
    return kind, options, None


def default_value(kind: str, options: dict[str, Any], values: list[Any] | None) -> Any:
    """What a widget holds before a saved value reaches it, as the editor's widget constructors set it."""
    if "default" in options:
        return options["default"]
    if kind == "COMBO":
        return values[0] if values else None
    if kind in ("INT", "FLOAT"):
        low = options.get("min")
        return low if isinstance(low, int | float) and not isinstance(low, bool) and low > 0 else 0
    if kind == "BOOLEAN":
        return False
    if kind == "COLOR":
        return "#000000"
    return ""


def ordered_inputs(info: dict[str, Any]) -> list[tuple[str, Any]]:
    """Required then optional inputs, in ``input_order`` where the server sends one."""
    declared = _mapping(info.get("input"))
    order = _mapping(info.get("input_order"))
    found = []
    for section in ("required", "optional"):
        specs = _mapping(declared.get(section))
        listed = order.get(section)
        names = listed if isinstance(listed, list) else list(specs)
        found += [(name, specs[name]) for name in names if name in specs]
    return found


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def widgets_for(specs: list[tuple[str, Any]], prefix: str = "") -> list[Widget]:
    """The widgets a list of input specs gives, in the editor's order, before any value is set."""
    found: list[Widget] = []
    for name, spec in specs:
        kind, options, values = spec_parts(spec)
        full = prefix + name
        if options.get("forceInput"):
            continue
        widget_type = options.get("widgetType")
        if kind == DYNAMIC_COMBO:
            choices = {str(entry.get("key")): entry.get("inputs") or {}
                       for entry in options.get("options") or [] if isinstance(entry, dict)}
            first = options.get("default", next(iter(choices), None))
            found.append(Widget(full, kind, options, first, choices=choices))
            continue
        if kind in UNSAVED_WIDGETS:
            found.append(Widget(full, kind, options, list(UNSAVED_WIDGETS[kind]), saved=False))
            continue
        if kind not in VALUE_WIDGETS:
            if isinstance(widget_type, str) and widget_type in VALUE_WIDGETS:
                kind = widget_type
            else:
                continue
        found.append(Widget(full, kind, options, default_value(kind, options, values)))
        # The editor's old convention still holds: an INT named seed or noise_seed gets one unasked.
        control = options.get("control_after_generate", kind == "INT" and full in LEGACY_SEEDS)
        if control:
            found.append(Widget("control_after_generate", "COMBO", {},
                                control if isinstance(control, str) else "fixed", sent=False))
        if kind == "COMBO" and any(options.get(flag) for flag in UPLOAD_OPTIONS):
            found.append(Widget("upload", "BUTTON", {}, None, sent=False))
    return found


def _sub_specs(inputs: dict[str, Any]) -> list[tuple[str, Any]]:
    found = []
    for section in ("required", "optional"):
        found += list(_mapping(inputs.get(section)).items())
    return found


def _extension_widgets(class_type: str, widgets: list[Widget]) -> list[Widget]:
    extra = EXTENSION_WIDGETS.get(class_type)
    if extra is None:
        return widgets
    after, names, sent = extra
    added = [Widget(name, "BUTTON", {}, "", sent=sent) for name in names]
    at = next((i + 1 for i, w in enumerate(widgets) if w.name == after), len(widgets))
    while at < len(widgets) and widgets[at].kind == "BUTTON":
        at += 1  # an upload button of the same input comes first
    return widgets[:at] + added + widgets[at:]


def load_widgets(class_type: str, info: dict[str, Any], saved: Any) -> list[Widget]:
    """The node's widgets holding its saved values, as the editor has them after loading it."""
    widgets = _extension_widgets(class_type, widgets_for(ordered_inputs(info)))
    if class_type == CUSTOM_COMBO and isinstance(saved, list):
        widgets += [Widget("index", "INT", {}, 0)] + [Widget(f"option{n}", "STRING", {}, "")
                                                      for n in range(1, len(saved) - 1)]
    if isinstance(saved, dict):
        return _assign_by_name(widgets, saved)
    values = list(saved) if isinstance(saved, list) else []
    position = 0
    index = 0
    while index < len(widgets):
        widget = widgets[index]
        if widget.saved and position < len(values):
            widget.value = values[position]
            position += 1
        if widget.choices is not None:
            _expand(widgets, index)
        index += 1
    return widgets


def _expand(widgets: list[Widget], index: int) -> None:
    """Puts a dynamic combo's sub-widgets for its current option right after it."""
    combo = widgets[index]
    inputs = (combo.choices or {}).get(str(combo.value))
    if isinstance(inputs, dict):
        widgets[index + 1:index + 1] = widgets_for(_sub_specs(inputs), combo.name + ".")


def _assign_by_name(widgets: list[Widget], saved: dict[str, Any]) -> list[Widget]:
    index = 0
    while index < len(widgets):
        widget = widgets[index]
        if widget.name in saved:
            widget.value = saved[widget.name]
        if widget.choices is not None:
            _expand(widgets, index)
        index += 1
    return widgets

