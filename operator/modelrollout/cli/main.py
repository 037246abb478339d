"""`modelrollout` (also `kubectl modelrollout`): watch rollouts and act on them.

Actions never write spec (Git stays the only author of the desired state): each writes one
annotation that the operator applies once, records in status and posts as an Event naming the
user the API server says you are.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import metadata
from typing import Any, cast

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelrollout.api.v1alpha1 import AT_REST, GROUP, PLURAL, UNHEALTHY_PHASES, VERSION
from modelrollout.cli import reference, report
from modelrollout.cli.view import render_status, render_table
from modelrollout.domain.commands import COMMAND_ANNOTATION, encode, new_command
from modelrollout.domain.durations import parse_duration
from modelrollout.domain.machine import CommandKind
from modelrollout.k8s.objects import error_message

ACTIONS: dict[str, str] = {
    "promote": "end the current step (with --full: skip all remaining steps)",
    "abort": "roll the canary back now",
    "pause": "hold the rollout where it is",
    "resume": "continue a paused rollout",
    "retry": "start a rolled-back revision again",
    "approve": "let the retraining that waits for a human run",
    "reject": "end the retraining that waits for a human",
}
DECISIONS = ("approve", "reject")
# Exit codes of `status`, so that it can gate a pipeline step.
HEALTHY, UNHEALTHY, TIMED_OUT = 0, 1, 2


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


def verdict(body: dict[str, Any]) -> int:
    """UNHEALTHY when the rollout rolled back, failed or is Degraded; HEALTHY otherwise."""
    status = body.get("status") or {}
    degraded = any(c.get("type") == "Degraded" and c.get("status") == "True"
                   for c in status.get("conditions") or [])  # fmt: skip
    return UNHEALTHY if status.get("phase") in UNHEALTHY_PHASES or degraded else HEALTHY


def _waits(body: dict[str, Any]) -> bool:
    """Whether a retraining waits for a human's approve or reject."""
    current = ((body.get("status") or {}).get("retraining") or {}).get("current") or {}
    return bool(current.get("state") == "WaitingForApproval")


def _done(body: dict[str, Any]) -> bool:
    """At rest: promoted with no canary left, or rolled back."""
    status = body.get("status") or {}
    generation = (body.get("metadata") or {}).get("generation")
    seen = status.get("observedGeneration") == generation
    return (seen and status.get("phase") in AT_REST and not status.get("canary")) \
        or status.get("phase") in UNHEALTHY_PHASES  # fmt: skip


def _show(body: Any, output: str | None) -> str:
    if output == "json":
        return json.dumps(body, indent=2)
    if output == "yaml":
        return str(yaml.safe_dump(body, sort_keys=False))
    return render_status(body) if isinstance(body, dict) else render_table(body)


def _status(cli: Cli, args: argparse.Namespace) -> int:
    """Print once; with --watch redraw; with --timeout (or --until-done) wait until the rollout
    is at rest. Exit 0 when healthy, 1 when rolled back, failed or Degraded, 2 on timeout."""
    waiting = args.timeout is not None or args.until_done
    deadline = time.monotonic() + parse_duration(args.timeout) if args.timeout else None
    while True:
        body = cli.get(args.name)
        if args.watch:
            sys.stdout.write("\x1b[H\x1b[2J" if sys.stdout.isatty() else "\n")
        if args.watch or not waiting or _done(body):
            print(_show(body, args.output), flush=True)
        if not waiting and not args.watch:
            return verdict(body)
        if waiting and _done(body):
            return verdict(body)
        if deadline is not None and time.monotonic() >= deadline:
            phase = (body.get("status") or {}).get("phase")
            print(f"timed out after {args.timeout}: phase {phase}", file=sys.stderr)
            return TIMED_OUT
        time.sleep(args.interval)


def _common() -> argparse.ArgumentParser:
    """The options every command takes, before or after it (`status NAME -n ml` works)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", default=argparse.SUPPRESS)
    common.add_argument("--kubeconfig", default=argparse.SUPPRESS)
    common.add_argument("--context", default=argparse.SUPPRESS)
    return common


def parser() -> argparse.ArgumentParser:
    common = _common()
    p = argparse.ArgumentParser(prog="modelrollout", description=__doc__.splitlines()[0],
                                parents=[common])  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the version", parents=[common])
    ls = sub.add_parser("list", help="the rollouts, with phase, versions, weight and step",
                        parents=[common])  # fmt: skip
    ls.add_argument("-A", "--all-namespaces", action="store_true")
    ls.add_argument("-o", "--output", choices=("json", "yaml"))
    st = sub.add_parser("status", parents=[common],
                        help="one rollout: step, weight, each signal against its bound; exits 1 "
                        "when rolled back or Degraded")  # fmt: skip
    st.add_argument("name")
    st.add_argument("-w", "--watch", action="store_true", help="redraw until interrupted")
    st.add_argument("--interval", type=float, default=2.0)
    st.add_argument("--until-done", action="store_true", help="wait until it is at rest")
    st.add_argument("-t", "--timeout", help="wait at most this long (e.g. 10m) until it is at "
                    "rest; exit 2 if it is not")  # fmt: skip
    st.add_argument("-o", "--output", choices=("json", "yaml"))
    reference.add_parser(sub, common)
    report.add_parser(sub, common)
    for action, text in ACTIONS.items():
        a = sub.add_parser(action, help=text, parents=[common])
        a.add_argument("name")
        if action == "promote":
            a.add_argument("--full", action="store_true", help="skip all remaining steps")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "reference":  # needs no cluster
        return reference.run(args)
    try:
        return _run(args)
    except ApiException as error:
        print(f"error: {error_message(error)}", file=sys.stderr)
        return 1
    except config.ConfigException as error:
        print(f"error: no usable kubeconfig: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # a --timeout that is not a duration
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.command == "version":  # needs no cluster either
        print(f"modelrollout {metadata.version('modelrollout')}")
        return 0
    cli = Cli(getattr(args, "kubeconfig", None), getattr(args, "context", None),
              getattr(args, "namespace", None))  # fmt: skip
    if args.command == "list":
        print(_show(cli.list(args.all_namespaces), args.output))
    elif args.command == "status":
        return _status(cli, args)
    elif args.command == "report":
        return report.run(cli.get(args.name), args)
    else:
        if args.command in DECISIONS and not _waits(cli.get(args.name)):
            print(f"error: nothing waits for approval on {cli.namespace}/{args.name}",
                  file=sys.stderr)  # fmt: skip
            return 1
        kind = "promote-full" if args.command == "promote" and args.full else args.command
        user = cli.act(args.name, cast(CommandKind, kind))
        print(f"{kind} requested for {cli.namespace}/{args.name} as {user}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
