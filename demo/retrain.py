"""The demo's retraining Job: one process on the process node, as a user's pipeline step would be.

It reads the recent labelled transactions (a JSON-lines file the label-joining service keeps: the
demo's stand-in for a feature store), trains the next model version on them, registers it in the
model registry (a directory), and sets the rollout's model version with its own ServiceAccount's
token, which only allows that: the operator never writes spec. Its termination message says what
it did. The trigger is in its env (MODELROLLOUT_TRIGGER_*), set by the operator.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.request
from pathlib import Path

import numpy as np
from models import Sample, accuracy, save, train
from server import AMOUNT_EDGES

from modelrollout.domain.reference import DEFAULT_KEY, encode, histogram_counts


def main() -> None:
    registry = Path(os.environ["MODEL_DIR"])
    version = os.environ["NEXT_VERSION"]
    rows = [json.loads(line) for line in (registry / "labelled.jsonl").read_text().splitlines()
            if line.strip()]  # fmt: skip
    epoch = rows[-1]["epoch"]  # the world as it is now
    recent = [r for r in rows if r["epoch"] == epoch][-int(os.environ.get("RECENT", "6000")) :]
    x = np.array([r["features"] for r in recent], dtype=float)
    y = np.array([r["label"] for r in recent], dtype=np.int_)
    cut = int(len(y) * 0.8)
    model = train(version, (0, 1, 2, 3), True, Sample(x[:cut], y[:cut]))
    held = accuracy(model, Sample(x[cut:], y[cut:]))
    save(model, registry / f"{version}.json")
    print(f"trained {version} on {cut} recent labels (trigger: "
          f"{os.environ.get('MODELROLLOUT_TRIGGER_SIGNAL')} "
          f"{os.environ.get('MODELROLLOUT_TRIGGER_MESSAGE')}); held-out accuracy {held:.3f}",
          flush=True)  # fmt: skip
    namespace, name = os.environ["MODELROLLOUT_NAMESPACE"], os.environ["MODELROLLOUT_ROLLOUT"]
    image = os.environ["IMAGE"]
    api = (f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:"
           f"{os.environ['KUBERNETES_SERVICE_PORT']}")  # fmt: skip
    # first the monitor's reference: the inputs this version was trained on
    reference = encode(histogram_counts(x[:cut, 0], AMOUNT_EDGES), f"retraining of {version}")
    _patch(f"{api}/api/v1/namespaces/{namespace}/configmaps/{os.environ['REFERENCE']}",
           {"data": {DEFAULT_KEY: reference}}, "application/merge-patch+json")  # fmt: skip
    patch = [{"op": "replace", "path": "/spec/model/version", "value": version},
             {"op": "replace", "path": "/spec/template/spec/containers/0/image",
              "value": f"{image}:{version}"}]  # fmt: skip
    # then the version, as a user's pipeline would (under GitOps: a pull request)
    _patch(f"{api}/apis/modelrollout.io/v1alpha1/namespaces/{namespace}/modelrollouts/{name}",
           patch, "application/json-patch+json")  # fmt: skip
    said = (
        f"{version} trained on {cut} recent labels (held-out accuracy {held:.3f}); {name} set to it"
    )
    Path(os.environ.get("TERMINATION_MESSAGE_PATH", "/dev/null")).write_text(said)
    print(said, flush=True)


def _patch(url: str, body: object, kind: str) -> None:
    """PATCH with the Job's own ServiceAccount token; exit 2 saying why when refused."""
    headers = {"Authorization": f"Bearer {os.environ['TOKEN']}", "Content-Type": kind}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="PATCH",  # noqa: S310 (the API server's https URL)
                                     headers=headers)  # fmt: skip
    context = ssl.create_default_context(cadata=os.environ["CA"])
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:  # noqa: S310
            answer.read()
    except urllib.error.HTTPError as error:
        said = f"PATCH {url}: HTTP {error.code} {error.read()[:300]!r}"
        Path(os.environ.get("TERMINATION_MESSAGE_PATH", "/dev/null")).write_text(said)
        print(said, file=sys.stderr, flush=True)
        sys.exit(2)
    except (OSError, ssl.SSLError) as error:
        said = f"PATCH {url}: {error}"
        Path(os.environ.get("TERMINATION_MESSAGE_PATH", "/dev/null")).write_text(said)
        print(said, file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
