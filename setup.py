"""Packaging for plant-disease; metadata and requirements live in settings.ini (nbdev 2)."""
import os
import shlex
from configparser import ConfigParser

import setuptools

cfg = ConfigParser(delimiters=["="])
cfg.read("settings.ini", encoding="utf-8")
cfg = cfg["DEFAULT"]

requirements = shlex.split(cfg.get("requirements", ""))
# GPU machines: PLANT_DISEASE_TF="tensorflow[and-cuda]==2.21.0" pip install -e .
tf_pkg = os.environ.get("PLANT_DISEASE_TF")
if tf_pkg:
    requirements = [tf_pkg if r.startswith("tensorflow-cpu") else r for r in requirements]

setuptools.setup(
    name=cfg["repo"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    author=cfg["author"],
    author_email=cfg["author_email"],
    license="Apache-2.0",
    url=cfg["git_url"],
    # the library, the service (app/: the API, its worker and dashboard) and the helpers tests/ and bench/ share
    # (testkit/: a clean copy of the repo, params, free ports, processes, PostgreSQL, the running service)
    packages=setuptools.find_packages(include=["plant_disease", "plant_disease.*", "app", "app.*", "testkit",
                                               "testkit.*"]),
    include_package_data=True,
    # an installed library migrates its prediction log and shows the management notes without a checkout;
    # the service reads its web page from app/static/ (next to its code); the rest are app/'s own settings and notebook
    package_data={"plant_disease": ["management_notes.yaml", "profiles.yaml", "migrations/*.py", "migrations/*.mako",
                                    "migrations/versions/*.py"],
                  "app": ["static/*", "alembic.ini", "dashboard.ipynb", "voila.json"]},
    python_requires=">=" + cfg["min_python"],
    install_requires=requirements,
    extras_require={"serve": (serve := shlex.split(cfg.get("serve_requirements", ""))),
                    "dashboard": (dashboard := shlex.split(cfg.get("dashboard_requirements", ""))),
                    "dev": serve + dashboard + shlex.split(cfg.get("dev_requirements", ""))},
    entry_points={
        "console_scripts": cfg.get("console_scripts", "").split(),
        "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
    zip_safe=False,
)
