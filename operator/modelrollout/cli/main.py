"""`modelrollout` (also `kubectl modelrollout`): watch rollouts and act on them.

Actions never write spec (Git stays the only author of the desired state): each writes one
annotation that the operator applies once, records in status and posts as an Event naming the
user the API server says you are.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelrollout.api.v1alpha1 import GROUP, PLURAL, VERSION
from modelrollout.cli import reference
from modelrollout.cli.view import render_status, render_table
from modelrollout.domain.commands import COMMAND_ANNOTATION, encode, new_command
from modelrollout.domain.machine import CommandKind
from modelrollout.k8s.objects import error_message

ACTIONS: dict[str, str] = {
    "promote": "end the current step (with --full: skip all remaining steps)",
    "abort": "roll the canary back now",
    "pause": "hold the rollout where it is",
    "resume": "continue a paused rollout",
    "retry": "start a rolled-back revision again",
}
TERMINAL = ("Promoted", "RolledBack", "Failed")


class Cli:
    def __init__(self, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
        config.load_kube_config(config_file=kubeconfig, context=context)
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        self.namespace = (
            namespace or (active or {}).get("context", {}).get("namespace") or "default"
        )
        self.api = client.ApiClient()
        self.objects = client.CustomObjectsApi(self.api)

    def get(self, name: str) -> dict[str, Any]:
        body = self.objects.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return cast(dict[str, Any], body)

    def list(self, all_namespaces: bool) -> list[dict[str, Any]]:
        if all_namespaces:
            listed = self.objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        else:
            listed = self.objects.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL
            )
        return cast(list[dict[str, Any]], cast(dict[str, Any], listed)["items"])

    def whoami(self) -> str:
        try:
            review = client.AuthenticationV1Api(self.api).create_self_subject_review(
                client.V1SelfSubjectReview(
                    api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"
                )
            )
            user = (
                review.status.user_info.username
                if review.status and review.status.user_info
                else None
            )
        except ApiException:
            user = None
        return user or "unknown"

    def act(self, name: str, kind: CommandKind) -> str:
        self.get(name)  # a clear "not found" before anything is written
        command = new_command(kind, self.whoami())
        patch = {"metadata": {"annotations": {COMMAND_ANNOTATION: encode(command)}}}
        self.objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, patch
        )
        return command.user


def _watch(cli: Cli, name: str, interval: float, until_done: bool) -> int:
    while True:
        body = cli.get(name)
        sys.stdout.write("\x1b[H\x1b[2J" if sys.stdout.isatty() else "\n")
        print(render_status(body), flush=True)
        if until_done and (body.get("status") or {}).get("phase") in TERMINAL:
            return 0
        time.sleep(interval)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="modelrollout", description=__doc__.splitlines()[0])
    p.add_argument("-n", "--namespace")
    p.add_argument("--kubeconfig")
    p.add_argument("--context")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="the rollouts, with phase, versions, weight and step")
    ls.add_argument("-A", "--all-namespaces", action="store_true")
    st = sub.add_parser("status", help="one rollout: step, weight, each signal against its bound")
    st.add_argument("name")
    st.add_argument("-w", "--watch", action="store_true", help="redraw until interrupted")
    st.add_argument("--interval", type=float, default=2.0)
    st.add_argument("--until-done", action="store_true", help="with --watch: stop once it ends")
    reference.add_parser(sub)
    for action, text in ACTIONS.items():
        a = sub.add_parser(action, help=text)
        a.add_argument("name")
        if action == "promote":
            a.add_argument("--full", action="store_true", help="skip all remaining steps")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "reference":  # needs no cluster
        return reference.run(args)
    try:
        cli = Cli(args.kubeconfig, args.context, args.namespace)
        if args.command == "list":
            print(render_table(cli.list(args.all_namespaces)))
        elif args.command == "status":
            if args.watch:
                return _watch(cli, args.name, args.interval, args.until_done)
            print(render_status(cli.get(args.name)))
        else:
            kind = "promote-full" if args.command == "promote" and args.full else args.command
            user = cli.act(args.name, cast(CommandKind, kind))
            print(f"{kind} requested for {cli.namespace}/{args.name} as {user}")
    except ApiException as error:
        print(f"error: {error_message(error)}", file=sys.stderr)
        return 1
    except config.ConfigException as error:
        print(f"error: no usable kubeconfig: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
