"""Maps the top-level source folders into the ``mlserving`` namespace.

operator/, server/, training/ and cli/ have no ``__init__.py`` at their own root (a root
``operator/__init__.py`` would shadow the stdlib ``operator`` module for any Python started in
the repository). Every subpackage below them is discovered, so a new subfolder cannot silently
go missing from the wheel.
"""

from setuptools import find_namespace_packages, setup

SOURCE_ROOTS = {"operator": "operator", "server": "server", "training": "training", "cli": "cli"}

package_dir = {f"mlserving.{name}": folder for name, folder in SOURCE_ROOTS.items()}
packages = []
for name, folder in SOURCE_ROOTS.items():
    packages.append(f"mlserving.{name}")
    packages += [f"mlserving.{name}.{sub}" for sub in find_namespace_packages(where=folder)
                 if "__pycache__" not in sub]

setup(package_dir=package_dir, packages=packages)
