#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests offline (run by validate_manifests.sh).

    validate_manifests.py [--kubernetes-versions 1.29.0,1.37.0] [--build DIR] RENDERED.yaml...

Each file is one kustomize overlay rendered by `kubectl kustomize`. Checks:
  1. every core kind strictly (unknown fields are errors) against the Kubernetes API schemas
     of each version (the kubernetes-validate package, offline);
  2. LeaderWorkerSet: its pod templates strictly as core/v1 PodTemplateSpec, the rest against
     leaderworkerset-v1.schema.json (from the LWS v1 API types; the CRD's own schema is not
     available offline, so the LWS CRD validation itself is reported as not done);
     any other custom kind is reported as not validated;
  3. rami's own invariants: the coordinator's discovery settings match the worker pods
     (GPUs per pod, ports, groups x T = pods x GPUs), every $(VAR) in args is defined, every
     ConfigMap key referenced exists, gRPC health probes, non-root pods;
  4. every container's command line, with its variables filled in: `node ...` through
     `deploy/launch-node.sh --dry-run`; `coordinator ...` / `worker ...` flags against the
     built binary's --helpfull (with --build; reported as not checked without a binary).
Prints PASS/FAIL lines and "N passed, N failed"; exits 1 on any failure.
"""
import json
import os
import re
import subprocess
import sys

import jsonschema
import kubernetes_validate
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BINARIES = {"coordinator": "coordinator/rami-coordinator", "worker": "worker/service/rami-worker"}
results = {"passed": 0, "failed": 0}
not_validated = []


def check(ok, what):
    results["passed" if ok else "failed"] += 1
    print(("PASS: " if ok else "FAIL: ") + what)
    return ok


def name_of(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def pod_templates(doc):
    """(where, PodTemplateSpec) of a workload."""
    spec = doc.get("spec", {})
    if doc["kind"] == "LeaderWorkerSet":
        lwt = spec.get("leaderWorkerTemplate", {})
        return [(k, lwt[k]) for k in ("leaderTemplate", "workerTemplate") if k in lwt]
    if "template" in spec:
        return [("template", spec["template"])]
    return []


def validate_core(doc, versions, label):
    for version in versions:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return False
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            check(False, f"{label}: {name_of(doc)} against Kubernetes {version}: {path}: "
                  f"{error.message}")
            return True
    check(True, f"{label}: {name_of(doc)} valid (strict) against Kubernetes "
          f"{', '.join(versions)}")
    return True


def validate_lws(doc, versions, label):
    schema = json.load(open(os.path.join(HERE, "leaderworkerset-v1.schema.json")))
    try:
        jsonschema.validate(doc, schema)
        check(True, f"{label}: {name_of(doc)} spec valid against leaderworkerset-v1.schema.json")
    except jsonschema.ValidationError as error:
        check(False, f"{label}: {name_of(doc)}: {'.'.join(map(str, error.path))}: "
              f"{error.message}")
    for where, template in pod_templates(doc):
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate",
                   "metadata": {"name": f"{doc['metadata']['name']}-{where}"},
                   "template": template}
        validate_core(wrapped, versions, f"{label}: LeaderWorkerSet {where}")
    not_validated.append(f"{label}: {name_of(doc)} against the LWS CRD's own OpenAPI schema "
                         "(not available offline)")


def env_names(container):
    return {e["name"] for e in container.get("env", [])}


def config_values(docs):
    for doc in docs:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("rami-config"):
            return doc["metadata"]["name"], doc.get("data", {})
    return None, {}


def check_rami(docs, label):
    """rami-specific consistency of one rendered overlay."""
    cm_name, config = config_values(docs)
    if not check(cm_name is not None, f"{label}: ConfigMap rami-config present"):
        return
    tp, per_pod = int(config["RAMI_TP"]), int(config["RAMI_GPUS_PER_POD"])
    max_groups, port = int(config["RAMI_MAX_GROUPS"]), int(config["RAMI_WORKER_PORT"])
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "LeaderWorkerSet")]
    for doc in workloads:
        for where, template in pod_templates(doc):
            pod = template.get("spec", {})
            check(pod.get("securityContext", {}).get("runAsNonRoot") is True,
                  f"{label}: {name_of(doc)} {where}: runAsNonRoot")
            for c in pod.get("containers", []):
                defined = env_names(c)
                used = set(re.findall(r"\$\((\w+)\)", " ".join(c.get("args", []))))
                check(used <= defined, f"{label}: {name_of(doc)} {c['name']}: args use only "
                      f"defined variables (undefined: {sorted(used - defined) or 'none'})")
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("configMapKeyRef")
                    if ref:
                        check(ref["name"] == cm_name and ref["key"] in config,
                              f"{label}: {name_of(doc)} env {e['name']} -> "
                              f"{ref['name']}/{ref['key']} exists")
    coordinator = [d for d in workloads if d["metadata"]["name"] == "rami-coordinator"]
    if check(len(coordinator) == 1, f"{label}: one coordinator Deployment"):
        c = coordinator[0]["spec"]["template"]["spec"]["containers"][0]
        tls = any(a.startswith("--tls_cert_file=") for a in c.get("args", []))
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if tls:  # the kubelet's gRPC probes speak plaintext: HTTPS /health and TCP
                p = c.get(probe, {})
                check("tcpSocket" in p or p.get("httpGet", {}).get("scheme") == "HTTPS",
                      f"{label}: coordinator {probe} is a TLS-safe probe (TCP or HTTPS)")
            else:
                check("grpc" in c.get(probe, {}), f"{label}: coordinator {probe} is a gRPC probe")
        check(coordinator[0]["spec"].get("replicas") == 1 and
              coordinator[0]["spec"]["strategy"]["type"] == "Recreate",
              f"{label}: coordinator: 1 replica, Recreate (one coordinator holds the leases)")
    # The worker pods the coordinator's DNS template expects.
    sts = [d for d in workloads if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "rami-worker"]
    lws = [d for d in workloads if d["kind"] == "LeaderWorkerSet"]
    if not check(len(sts) + len(lws) == 1, f"{label}: one worker workload"):
        return
    worker = (sts or lws)[0]
    if sts:
        pods = worker["spec"].get("replicas", 1)
        check("{pod}" in config["RAMI_WORKER_HOST"],
              f"{label}: StatefulSet discovery by pod ordinal ({config['RAMI_WORKER_HOST']})")
    else:
        size = worker["spec"]["leaderWorkerTemplate"].get("size", 1)
        pods = worker["spec"].get("replicas", 1) * size
        check(size * per_pod == tp, f"{label}: one LWS replica = one group "
              f"({size} pods x {per_pod} GPUs = T {tp})")
        check("{group}" in config["RAMI_WORKER_HOST"] and "{pod_suffix}" in config["RAMI_WORKER_HOST"],
              f"{label}: LWS discovery by group and pod ({config['RAMI_WORKER_HOST']})")
    for where, template in pod_templates(worker):
        c = template["spec"]["containers"][0]
        gpus = int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))
        check(gpus == per_pod, f"{label}: {where}: nvidia.com/gpu {gpus} = RAMI_GPUS_PER_POD {per_pod}")
        ports = sorted(p["containerPort"] for p in c.get("ports", []))
        check(ports == list(range(port, port + per_pod)),
              f"{label}: {where}: worker ports {port}..{port + per_pod - 1}")
        check(any(v.get("emptyDir", {}).get("medium") == "Memory" and
                  any(m["name"] == v["name"] and m["mountPath"] == "/dev/shm"
                      for m in c.get("volumeMounts", []))
                  for v in template["spec"].get("volumes", [])),
              f"{label}: {where}: /dev/shm is a memory emptyDir (NCCL)")
    check(tp % per_pod == 0 or per_pod % tp == 0,
          f"{label}: groups align with pods (T {tp}, {per_pod} GPUs per pod)")
    check(pods * per_pod == max_groups * tp,
          f"{label}: {pods} pod(s) x {per_pod} GPUs = {max_groups} group(s) x T {tp}")


def resolved_args(container, config, namespace="rami"):
    """The container's args with $(VAR) filled in as the kubelet would."""
    env = {}
    for e in container.get("env", []):
        source = e.get("valueFrom", {})
        if "configMapKeyRef" in source:
            env[e["name"]] = config.get(source["configMapKeyRef"]["key"], "")
        elif "fieldRef" in source:
            env[e["name"]] = {"metadata.namespace": namespace, "status.podIP": "10.0.0.7"}.get(
                source["fieldRef"]["fieldPath"], "FIELD")
        else:
            env[e["name"]] = e.get("value", "")
    return [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a)
            for a in container.get("args", [])]


def known_flags(binary, cache={}):
    if binary not in cache:
        out = subprocess.run([binary, "--helpfull"], capture_output=True, text=True).stdout
        cache[binary] = set(re.findall(r"^\s+--(\w+) \(", out, re.M))
    return cache[binary]


def check_command_lines(docs, label, build):
    """Each container's entrypoint command and flags, as the image would run them."""
    _, config = config_values(docs)
    for doc in docs:
        for where, template in pod_templates(doc):
            for c in template.get("spec", {}).get("containers", []):
                args = resolved_args(c, config)
                what = f"{label}: {name_of(doc)} {c['name']}: `{' '.join(args)}`"
                command = args[0] if args else ""
                if command == "node":
                    run = subprocess.run(["bash", os.path.join(ROOT, "deploy/launch-node.sh"),
                                          *args[1:], "--dry-run"], capture_output=True, text=True)
                    check(run.returncode == 0, f"{what}: launch-node.sh --dry-run: "
                          f"{(run.stdout + run.stderr).strip().splitlines()[-1:]}")
                elif command in BINARIES:
                    binary = os.path.join(build or "", BINARIES[command])
                    if not build or not os.access(binary, os.X_OK):
                        not_validated.append(f"{what}: flags (no built {BINARIES[command]})")
                        continue
                    used = {a[2:].split("=", 1)[0] for a in args[1:] if a.startswith("--")}
                    unknown = sorted(used - known_flags(binary))
                    check(not unknown, f"{label}: {name_of(doc)} {c['name']}: every flag is one "
                          f"of {BINARIES[command]}'s (unknown: {unknown or 'none'})")
                else:
                    check(False, f"{what}: the image's entrypoint has no command '{command}'")


def main(argv):
    versions = [kubernetes_validate.latest_version()]
    build = None
    while len(argv) > 2 and argv[1] in ("--kubernetes-versions", "--build"):
        if argv[1] == "--build":
            build = argv[2]
        else:
            versions = argv[2].split(",")
        argv = argv[:1] + argv[3:]
    for path in argv[1:]:
        label = os.path.basename(path).removesuffix(".yaml")
        docs = [d for d in yaml.safe_load_all(open(path)) if d]
        kinds = {}
        for doc in docs:
            kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
            if doc["kind"] == "LeaderWorkerSet":
                validate_lws(doc, versions, label)
            elif not validate_core(doc, versions, label):
                not_validated.append(f"{label}: {name_of(doc)} (no schema for "
                                     f"{doc.get('apiVersion')} {doc['kind']})")
        print(f"{label}: {len(docs)} resources: "
              f"{', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}")
        check_rami(docs, label)
        check_command_lines(docs, label, build)
    for line in not_validated:
        print("NOT VALIDATED: " + line)
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
