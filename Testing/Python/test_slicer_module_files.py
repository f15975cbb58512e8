"""The module file, its .ui and the build files agree with each other (checked without Slicer).

A widget name used in WMHDomainAdapt.py but missing from the .ui, a parameter bound in the .ui
that the parameter node lacks, or a Python file the CMakeLists forgets to install all surface
only when a user opens the module in Slicer; these checks catch them in CI.
"""

import ast
import json
import py_compile
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULE_FILE = REPO / "WMHDomainAdapt" / "WMHDomainAdapt.py"
UI_FILE = REPO / "Resources" / "UI" / "WMHDomainAdapt.ui"
MODULE_CMAKE = REPO / "WMHDomainAdapt" / "CMakeLists.txt"


def ui_widgets() -> dict[str, ElementTree.Element]:
    return {w.get("name"): w for w in ElementTree.parse(UI_FILE).iter("widget")}


def test_module_file_compiles():
    py_compile.compile(str(MODULE_FILE), doraise=True)


def test_every_widget_the_module_uses_exists_in_the_ui_file():
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE_FILE.read_text()))
    assert used and used <= set(ui_widgets())


def test_every_parameter_bound_in_the_ui_is_a_parameter_node_field():
    tree = ast.parse(MODULE_FILE.read_text())
    (node_class,) = [n for n in tree.body
                     if isinstance(n, ast.ClassDef) and n.name == "WMHDomainAdaptParameterNode"]
    fields = {s.target.id for s in node_class.body if isinstance(s, ast.AnnAssign)}
    bound = {p.findtext("string") for w in ui_widgets().values() for p in w.findall("property")
             if p.get("name") == "SlicerParameterName"}
    assert bound == {"t1Volume", "flairVolume", "outputSegmentation", "replaceSegmentation", "probabilityMap",
                     "tuneLayers"}
    assert bound <= fields


def test_the_parameter_node_has_every_field_the_controller_reads():
    module = ast.parse(MODULE_FILE.read_text())
    (node_class,) = [n for n in module.body
                     if isinstance(n, ast.ClassDef) and n.name == "WMHDomainAdaptParameterNode"]
    controller = ast.parse((REPO / "WMHDomainAdapt" / "WMHDomainAdaptLogicLib" / "controller.py").read_text())
    (protocol,) = [n for n in controller.body if isinstance(n, ast.ClassDef) and n.name == "Parameters"]
    wanted = {s.target.id for s in protocol.body if isinstance(s, ast.AnnAssign)}
    assert wanted and wanted == {s.target.id for s in node_class.body if isinstance(s, ast.AnnAssign)}


def test_cmake_installs_every_module_python_file_and_resource():
    cmake = MODULE_CMAKE.read_text()
    module_dir = REPO / "WMHDomainAdapt"
    for path in module_dir.rglob("*.py"):
        relative = path.relative_to(module_dir).as_posix().replace("WMHDomainAdapt.py", "${MODULE_NAME}.py")
        assert relative in cmake, relative
    for resource in ("Resources/Icons/${MODULE_NAME}.png", "Resources/UI/${MODULE_NAME}.ui",
                     "Resources/Terminology/${MODULE_NAME}-Terminology.term.json",
                     "Resources/Models/wmh_source_synthetic.safetensors"):
        assert resource in cmake
    assert "${REPOSITORY_DIR}/WMHDomainAdaptLib/*.py" in cmake  # the library beside the module
    assert (REPO / "Resources" / "Icons" / "WMHDomainAdapt.png").is_file()


def test_extension_declares_its_pytorch_dependency_in_cmake_and_the_index_entry():
    assert re.search(r'set\(EXTENSION_DEPENDS "PyTorch"\)', (REPO / "CMakeLists.txt").read_text())
    entry = json.loads((REPO / "docs" / "ExtensionsIndex" / "WMHDomainAdapt.json").read_text())
    assert entry["build_dependencies"] == ["PyTorch"] and entry["category"] == "Segmentation"


def test_every_screenshot_the_extension_declares_exists_in_the_repository():
    declared = re.search(r'set\(EXTENSION_SCREENSHOTURLS "([^"]*)"\)', (REPO / "CMakeLists.txt").read_text())
    for url in declared.group(1).split():
        assert "/main/" in url and (REPO / url.split("/main/", 1)[1]).is_file(), url
