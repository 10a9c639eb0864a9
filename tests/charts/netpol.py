"""NetworkPolicy semantics, offline: which policies select a pod, and whether a source pod (its
namespace's labels, its own labels) may reach a port of a target pod, as the API defines it
(a selected pod admits only what some rule of a selecting policy admits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.deploy.kuberay import PodPlan, selector_matches

NAMESPACE = "ml"


@dataclass
class Source:
    """A pod that opens a connection: its labels and its namespace (name and labels)."""

    labels: dict[str, str]
    namespace: str = NAMESPACE
    namespace_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.namespace_labels = {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


def selecting(policies: list[dict[str, Any]], pod: PodPlan) -> list[dict[str, Any]]:
    """The ingress policies of the namespace that select `pod`."""
    return [p for p in policies if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
            and selector_matches(p["spec"]["podSelector"], pod.labels)]  # fmt: skip


def _peer_admits(peer: dict[str, Any], source: Source) -> bool:
    assert "ipBlock" not in peer, "ipBlock peers are not modelled"
    if "namespaceSelector" in peer:
        in_namespace = selector_matches(peer["namespaceSelector"], source.namespace_labels)
    else:
        in_namespace = source.namespace == NAMESPACE
    return in_namespace and selector_matches(peer.get("podSelector") or {}, source.labels)


def _port_admits(rule: dict[str, Any], target: PodPlan, port: int) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(p.get("protocol", "TCP") == "TCP" and target.container_port(p["port"]) == port for p in ports)


def allowed(policies: list[dict[str, Any]], source: Source, target: PodPlan, port: int) -> bool:
    """May `source` open a TCP connection to `port` of `target`?"""
    chosen = selecting(policies, target)
    if not chosen:
        return True  # no policy selects it: everything is allowed
    return any(
        _port_admits(rule, target, port)
        and (not rule.get("from") or any(_peer_admits(peer, source) for peer in rule["from"]))
        for policy in chosen
        for rule in policy["spec"].get("ingress") or []
    )
