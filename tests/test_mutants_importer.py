"""The importer's behaviour that its mutants showed nothing else pinned down: the name a workflow
gets when its file says little, where in an image its workflow is found, what is kept beside a workflow
that waits for node packs, and what a refused upload or mapping says (and leaves as it was)."""

import copy
import io
import json
import struct
import zlib

import pytest
import yaml
from flask.testing import FlaskClient
from PIL import Image, PngImagePlugin

from studio.services import Services
from studio.workflows.importer import image_texts
from tests.servers.comfyui import ComfyUITestServer
from tests.test_workflow_pending import FANCY_INFO, fancy_ui
from tests.ui_workflows import SAMPLER_API, node, sampler_ui


def upload(client: FlaskClient, data: bytes, filename: str, **form: str):  # type: ignore[no-untyped-def]
    return client.post("/api/workflows", data={"file": (io.BytesIO(data), filename), **form},
                       content_type="multipart/form-data")


def saving(title: str = "Save Image", prefix: str = "ComfyUI") -> bytes:
    prompt = copy.deepcopy(SAMPLER_API)
    prompt["9"]["_meta"]["title"] = title
    prompt["9"]["inputs"]["filename_prefix"] = prefix
    return json.dumps(prompt).encode()


@pytest.mark.parametrize(("data", "filename", "name"), [
    (saving(), "Knight poster.json", "Knight poster"),  # a telling file name comes first
    (saving(title="Poster of a knight"), "workflow.json", "Poster of a knight"),  # then a title given to the save
    (saving(title="Save Image", prefix="posters/knight"), "workflow (2).json", "knight"),  # then its prefix
    (saving(title="Poster", prefix="knight"), "ComfyUI_00012_.json", "Poster"),
    (saving(prefix="studio/posters/knight"), "workflow.json", "knight"),  # only the last folder's name
    (saving(), "blob", "blob"),  # nothing telling: the file name after all
    (saving(), "", "Imported workflow"),
])
def test_a_workflow_without_a_title_is_named_after_its_file_or_its_output(
    client: FlaskClient, data: bytes, filename: str, name: str
) -> None:
    answer = upload(client, data, filename)
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["name"] == name


def test_a_workflow_converted_meanwhile_is_converted_once(
    client: FlaskClient, services: Services, comfy_server: ComfyUITestServer
) -> None:
    answer = upload(client, json.dumps(fancy_ui()).encode(), "fancy.json")
    waiting = services.library.get(answer.get_json()["id"])
    comfy_server.install_node("FancyUpscaler", FANCY_INFO)
    info = services.comfy.object_info(refresh=True)
    assert services.importer.complete(waiting, {}) is waiting  # ComfyUI still lacks the node: as it was
    first = services.importer.complete(waiting, info)
    assert (first.manifest.version, first.manifest.unconverted_nodes) == (2, None)
    # A second request that read the library before the first converted it gets the converted one.
    second = services.importer.complete(waiting, info)
    assert second.manifest.version == 2
    assert second.prompt["20"]["inputs"]["scale"] == 2
    assert client.get(f"/api/workflows/{waiting.id}").get_json()["manifest"]["version"] == 2


def test_a_workflow_deleted_meanwhile_is_not_brought_back(
    client: FlaskClient, services: Services, comfy_server: ComfyUITestServer
) -> None:
    answer = upload(client, json.dumps(fancy_ui()).encode(), "fancy.json")
    waiting = services.library.get(answer.get_json()["id"])
    assert client.delete(f"/api/workflows/{waiting.id}", json={}).status_code == 200
    comfy_server.install_node("FancyUpscaler", FANCY_INFO)
    assert services.importer.complete(waiting, services.comfy.object_info(refresh=True)) is waiting
    assert not waiting.folder.exists()
    assert client.get(f"/api/workflows/{waiting.id}").status_code == 404


def test_a_ready_workflow_is_left_as_it_is(client: FlaskClient, services: Services) -> None:
    answer = upload(client, json.dumps(SAMPLER_API).encode(), "castle.json")
    ready = services.library.get(answer.get_json()["id"])
    assert services.importer.complete(ready, services.comfy.object_info(refresh=True)) is ready
    assert client.get(f"/api/workflows/{ready.id}").get_json()["manifest"]["version"] == 1


def test_two_waiting_workflows_of_one_name_are_each_converted_under_their_own_id(
    client: FlaskClient, services: Services, comfy_server: ComfyUITestServer
) -> None:
    ids = [upload(client, json.dumps(fancy_ui()).encode(), "fancy.json").get_json()["id"] for _ in range(2)]
    assert ids == ["fancy-castle", "fancy-castle-2"]
    comfy_server.install_node("FancyUpscaler", FANCY_INFO)
    services.comfy.invalidate_object_info()  # as a reconnect does
    items = {item["id"]: item for item in client.get("/api/workflows").get_json()["items"]}
    assert [(items[i]["name"], items[i]["version"], items[i]["readiness"]["ready"]) for i in ids] == [
        ("Fancy castle", 2, True), ("Fancy castle (2)", 2, True)]


@pytest.mark.parametrize(("save", "output"), [
    ("FancySave", {"id": "file_9", "name": "Result", "type": "file", "node_id": "9"}),  # a guess: some file
    ("VHS_VideoCombine", {"id": "video_9", "name": "Result", "type": "video", "node_id": "9"}),  # known by name
])
def test_a_missing_saving_node_after_a_missing_upscaler_is_the_only_output(
    client: FlaskClient, save: str, output: dict[str, str]
) -> None:
    ui = fancy_ui()
    next(n for n in ui["nodes"] if n["id"] == 9)["type"] = save  # from a pack ComfyUI does not have either
    answer = upload(client, json.dumps(ui).encode(), "fancy.json")
    assert answer.status_code == 201, answer.get_json()
    manifest = client.get(f"/api/workflows/{answer.get_json()['id']}").get_json()["manifest"]
    assert sorted(manifest["unconverted_nodes"]) == sorted(["FancyUpscaler", save])
    # The upscaler feeds the saving node, so it saves nothing: never an output of its own.
    assert manifest["outputs"] == [output]


def test_a_bundled_workflows_mapping_is_refused_and_stays_as_it_was(client: FlaskClient) -> None:
    before = client.get("/api/workflows/image-resize").get_json()["manifest"]
    first = before["inputs"][0]["id"]
    refused = client.put("/api/workflows/image-resize/mapping", json={"inputs": [{"id": first, "name": "Renamed"}]})
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert (error["code"], error["message"]) == (
        "workflow_bundled", "Bundled workflows cannot be edited; import a copy instead.")
    assert client.get("/api/workflows/image-resize").get_json()["manifest"] == before


LONG_ID = "p" * 100


@pytest.mark.parametrize(("inputs", "named"), [
    ([{"id": "nope", "name": "Nope"}], "nope"),
    ([{"id": "seed", "name": "Luck"}, {"id": "nope"}, {"id": "gone"}], "nope"),  # the first unknown one
    ([{"id": 7}], "7"),
    ([{"id": LONG_ID}], "p" * 80),  # cut to 80 characters
])
def test_a_mapping_with_an_unknown_parameter_is_refused_naming_it_and_changes_nothing(
    client: FlaskClient, inputs: list[dict[str, object]], named: str
) -> None:
    workflow_id = upload(client, json.dumps(SAMPLER_API).encode(), "castle.json").get_json()["id"]
    before = client.get(f"/api/workflows/{workflow_id}").get_json()["manifest"]
    refused = client.put(f"/api/workflows/{workflow_id}/mapping", json={"inputs": inputs})
    assert refused.status_code == 400
    assert refused.get_json()["error"] == {"code": "bad_request", "message": f"Unknown parameter {named!r}.",
                                           "details": {"fields": {"inputs": f"unknown id {named}"}}}
    assert client.get(f"/api/workflows/{workflow_id}").get_json()["manifest"] == before


def test_a_mapping_that_would_leave_a_manifest_studio_cannot_read_is_refused_and_nothing_is_lost(
    client: FlaskClient, services: Services
) -> None:
    workflow_id = upload(client, json.dumps(SAMPLER_API).encode(), "castle.json").get_json()["id"]
    path = services.data_dir.workflows / workflow_id / "manifest.yaml"
    raw = yaml.safe_load(path.read_text())
    scheduler = next(spec for spec in raw["inputs"] if spec["id"] == "scheduler")
    scheduler["options"].append({"label": "Server's choice", "value": None})  # written by hand
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    before = client.get(f"/api/workflows/{workflow_id}").get_json()["manifest"]
    # Studio writes manifests without their nulls, and a choice without a value does not load: the
    # save is refused, naming the choice, rather than written and the workflow gone from the library.
    refused = client.put(f"/api/workflows/{workflow_id}/mapping", json={"inputs": [{"id": "seed", "name": "Luck"}]})
    assert refused.status_code == 400
    where = f"inputs.{raw['inputs'].index(scheduler)}.options.{len(scheduler['options']) - 1}.value"
    assert list(refused.get_json()["error"]["details"]["fields"]) == [where]
    assert client.get(f"/api/workflows/{workflow_id}").get_json()["manifest"] == before


def png_with_text_after_the_pixels(key: str, text: str) -> bytes:
    """A small PNG whose text chunk comes after its image data, where Pillow finds it only by decoding."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    data = buffer.getvalue()
    body = key.encode() + b"\0" + text.encode()
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    end = data.rindex(b"IEND") - 4
    return data[:end] + chunk + data[end:]


def webp_with_exif_prompt(prompt: dict[str, object]) -> bytes:
    """A WebP as ComfyUI saves one: the prompt in an EXIF text, "prompt:" first."""
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + json.dumps(prompt)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "WEBP", exif=exif)
    return buffer.getvalue()


def test_a_workflow_written_after_a_pngs_pixels_is_found(client: FlaskClient) -> None:
    ui = sampler_ui()
    ui["extra"]["title"] = "Castle after dark"
    answer = upload(client, png_with_text_after_the_pixels("workflow", json.dumps(ui)), "ComfyUI_00001_.png")
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["name"] == "Castle after dark"


def test_a_webps_exif_prompt_is_imported(client: FlaskClient) -> None:
    answer = upload(client, webp_with_exif_prompt(SAMPLER_API), "ComfyUI_00001_.webp")
    assert answer.status_code == 201, answer.get_json()
    workflow_id = answer.get_json()["id"]
    assert client.get(f"/api/workflows/{workflow_id}").get_json()["manifest"]["required_nodes"] == sorted(
        {node["class_type"] for node in SAMPLER_API.values()})


def test_a_ui_workflows_own_title_names_it(client: FlaskClient) -> None:
    ui = sampler_ui()
    ui["extra"].pop("title", None)
    ui["extra"].pop("name", None)
    ui.pop("name", None)
    ui["title"] = "Knight at dusk"
    answer = upload(client, json.dumps(ui).encode(), "workflow.json")
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["name"] == "Knight at dusk"


def huge_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buffer, "PNG")  # 100 million pixels, a few kB
    return buffer.getvalue()


@pytest.mark.parametrize(("data", "filename", "field"), [
    (b"GIF89a not really", "castle.gif", "unsupported file"),
    (huge_png(), "castle.png", "too many pixels"),
    (json.dumps({"nodes": "all of them"}).encode(), "castle.json", None),  # names the broken part
    (b'{"nodes": [', "castle.json", "invalid JSON"),
    (json.dumps({"castle": 1}).encode(), "castle.json", "not a workflow"),
])
def test_an_unreadable_file_is_refused_naming_the_file_field(
    client: FlaskClient, data: bytes, filename: str, field: str | None
) -> None:
    answer = upload(client, data, filename)
    assert answer.status_code == 400
    fields = answer.get_json()["error"]["details"]["fields"]
    assert list(fields) == ["file"]
    if field is not None:
        assert fields["file"] == field
    assert client.get("/api/workflows").get_json()["items"] == [
        item for item in client.get("/api/workflows").get_json()["items"] if item["bundled"]]


def test_parameters_named_by_very_long_titles_get_short_distinct_ids(client: FlaskClient) -> None:
    prompt = copy.deepcopy(SAMPLER_API)
    long_title = "Strength of the glow around the knight " * 6  # 234 characters
    prompt["3"]["inputs"]["cfg"] = ["12", 0]
    prompt["3"]["inputs"]["denoise"] = ["13", 0]
    prompt["12"] = {"class_type": "PrimitiveFloat", "inputs": {"value": 6.5}, "_meta": {"title": long_title + "A"}}
    prompt["13"] = {"class_type": "PrimitiveFloat", "inputs": {"value": 0.9}, "_meta": {"title": long_title + "B"}}
    answer = upload(client, json.dumps(prompt).encode(), "glow.json")
    assert answer.status_code == 201, answer.get_json()
    inputs = client.get(f"/api/workflows/{answer.get_json()['id']}").get_json()["manifest"]["inputs"]
    ids = {spec["node_id"]: spec["id"] for spec in inputs}
    base = ("_".join(long_title.lower().split()))[:190]
    assert (ids["12"], ids["13"]) == (base, base + "_2")


def test_only_the_outputs_app_mode_shows_are_the_workflows_outputs(client: FlaskClient) -> None:
    ui = sampler_ui()
    ui["nodes"].append(node(30, "SaveImage", ["posters"], [("images", "IMAGE", 14)], title="Poster"))
    next(n for n in ui["nodes"] if n["id"] == 8)["outputs"][0]["links"].append(14)
    ui["links"].append([14, 8, 0, 30, 0, "IMAGE"])
    ui["extra"]["linearData"] = {"outputs": [30]}
    answer = upload(client, json.dumps(ui).encode(), "castle.json")
    assert answer.status_code == 201, answer.get_json()
    outputs = client.get(f"/api/workflows/{answer.get_json()['id']}").get_json()["manifest"]["outputs"]
    assert outputs == [{"id": "image_30", "name": "Poster", "type": "image", "node_id": "30"}]


# -- the texts an image carries (the workflow importer's and the CivitAI import's one reader) ------

A1111 = "a knight at dusk\nNegative prompt: blur\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 8x8"
EVERYTHING = ("parameters", "prompt", "workflow")


def jpeg_with_comment(comment: bytes) -> bytes:
    """A JPEG as A1111 saves one: its parameters in the EXIF UserComment."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = comment
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def png_with(texts: dict[str, str], comment: bytes | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    exif = Image.Exif()
    if comment is not None:
        exif.get_ifd(0x8769)[0x9286] = comment
    buffer = io.BytesIO()  # as bytes: an Exif with only a sub-IFD is false, and Pillow would leave it out
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=info, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize(("comment", "text"), [
    (b"UNICODE\0" + A1111.encode("utf-16-be"), A1111),  # as A1111 writes it
    (b"ASCII\0\0\0" + A1111.encode(), A1111),
    (A1111.encode(), A1111),  # no character code at all: UTF-8
    (b"ASCII\0\0\0caf\xe9 au lait", "caf\ufffd au lait"),  # a byte that is no UTF-8 is replaced, not fatal
])
def test_a_jpegs_parameters_are_read_from_its_user_comment_only_when_asked_for(comment: bytes, text: str) -> None:
    data = jpeg_with_comment(comment)
    assert image_texts(data, EVERYTHING) == {"parameters": text}
    assert image_texts(data) == {}  # the workflow importer asks for ComfyUI's texts only


def test_only_the_texts_asked_for_are_read_and_a_pngs_own_chunk_comes_first() -> None:
    workflow = json.dumps(sampler_ui())
    data = png_with({"prompt": json.dumps(SAMPLER_API), "workflow": workflow, "parameters": A1111,
                     "Software": "an editor"}, comment=b"ASCII\0\0\0from the EXIF")
    assert image_texts(data) == {"prompt": json.dumps(SAMPLER_API), "workflow": workflow}
    assert image_texts(data, ("parameters",)) == {"parameters": A1111}
    webp = webp_with_exif_prompt(SAMPLER_API)
    assert image_texts(webp, ("parameters",)) == {}  # its EXIF prompt is not what was asked for
    assert image_texts(webp, EVERYTHING) == {"prompt": json.dumps(SAMPLER_API)}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_too_many_pixels_is_refused_in_words_where_pillow_only_warns(client: FlaskClient) -> None:
    """Outside the tests Pillow's bomb warning is only a warning: Studio's own limit refuses the file."""
    answer = upload(client, huge_png(), "castle.png")
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["message"] == "This image is too large to read (10000 x 10000 pixels)."
    assert error["details"]["fields"] == {"file": "too many pixels"}


def test_a_ui_workflow_whose_conversion_comfyui_could_not_read_is_refused_naming_why(client: FlaskClient) -> None:
    ui = sampler_ui()
    ui["nodes"][1]["inputs"] = [{"name": "", "type": "INT", "link": 5}]  # an input without a name
    answer = upload(client, json.dumps(ui).encode(), "workflow.json")
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["message"] == "This workflow cannot be read: node 5: an input name is not usable."
    assert error["details"]["fields"] == {"file": "node 5: an input name is not usable"}


def test_a_workflow_of_notes_only_or_an_unusable_id_is_refused_in_words(client: FlaskClient) -> None:
    notes = sampler_ui()
    notes["nodes"] = [n for n in notes["nodes"] if n["type"] == "Note"]
    notes["links"] = []
    answer = upload(client, json.dumps(notes).encode(), "notes.json")
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert (error["message"], error["details"]["fields"]) == ("This workflow has no nodes Studio can run.",
                                                              {"file": "no nodes"})
    answer = upload(client, png_with({}), "photo.png")
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert (error["message"], error["details"]["fields"]) == (
        "This image carries no ComfyUI workflow (it was saved without metadata).", {"file": "no workflow inside"})
    answer = upload(client, saving(), "workflow.json", id="knight poster")
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert (error["message"], error["details"]["fields"]) == ("Use letters, digits, '-' and '_' for the id.",
                                                              {"id": "invalid id"})
