"""A rendered pod's container as its process would see it, without a cluster: its env with
Secrets filled in (from the rendered Secrets, else test values) and its volume mounts placed
under a local folder (ConfigMaps and projected Secrets written as files), so the process's own
code can load them."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TEST_SECRET = "a-test-secret-value"


@dataclass
class ContainerView:
    """The container's env and where each of its mount paths lives on this machine."""

    env: dict[str, str]
    mounts: dict[str, Path]  # mountPath in the pod -> local folder

    def has_secret_file(self, name: str) -> bool:
        """Whether the folder SLIMRAY_SECRETS_DIR names holds the file `name` (a token)."""
        folder = self.env.get("SLIMRAY_SECRETS_DIR")
        return folder is not None and (Path(folder) / name).is_file()

    def local(self, path: str) -> str:
        """`path` as seen in the pod, moved under the local folder of the mount holding it."""
        for mount, folder in sorted(self.mounts.items(), key=lambda m: -len(m[0])):
            if path == mount or path.startswith(mount.rstrip("/") + "/"):
                return str(folder) + path[len(mount.rstrip("/")) :]
        return path


def _secret_value(ref: dict[str, Any], docs: list[dict[str, Any]]) -> str | None:
    for doc in docs:
        if doc["kind"] == "Secret" and doc["metadata"]["name"] == ref["name"]:
            data = doc.get("data", {})
            if ref["key"] in data:
                return base64.b64decode(data[ref["key"]]).decode()
            return None if ref.get("optional") else TEST_SECRET
    return None if ref.get("optional") else TEST_SECRET  # an existing Secret the chart only names


def _config_map(name: str, docs: list[dict[str, Any]]) -> dict[str, str]:
    return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)["data"]


def container_view(pod: dict[str, Any], docs: list[dict[str, Any]], root: Path) -> ContainerView:
    """Container 0 of `pod`, its mounts under `root` (ConfigMap keys written there, paths inside
    them and in env values rewritten to local ones)."""
    container = pod["containers"][0]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {}
    for mount in container.get("volumeMounts", []):
        folder = root / mount["name"]
        folder.mkdir(parents=True, exist_ok=True)
        mounts[mount["mountPath"]] = folder
    view = ContainerView({}, mounts)
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        for source in (volume.get("projected") or {}).get("sources", []):
            for item in source["secret"]["items"]:
                value = _secret_value({**source["secret"], "key": item["key"]}, docs)
                if value is not None:
                    (mounts[mount["mountPath"]] / item["path"]).write_text(value)
        if "configMap" in volume:
            for key, text in _config_map(volume["configMap"]["name"], docs).items():
                text = re.sub(r'"(/[^"]*)"', lambda m: f'"{view.local(m.group(1))}"', text)
                (mounts[mount["mountPath"]] / key).write_text(text)
    for item in container.get("env", []):
        if "value" in item:
            view.env[item["name"]] = view.local(str(item["value"]))
        elif "secretKeyRef" in item.get("valueFrom", {}):
            value = _secret_value(item["valueFrom"]["secretKeyRef"], docs)
            if value is not None:
                view.env[item["name"]] = value
    return view
