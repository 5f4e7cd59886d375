"""Run by tls_test.sh inside launch-node.sh --tls-dir: RAMI_SERVER, RAMI_HTTP (https://),
RAMI_TLS_CA (the deployment's CA), RAMI_CLI and TLS_TEST_TMP (certs/, rotated/, logs/)."""
import os
import shutil
import signal
import subprocess
import sys
import time

import openai

try:  # the HTTP client the installed openai package is built on
    import httpx2 as httpx
except ImportError:
    import httpx

SERVER, HTTP, CA = os.environ["RAMI_SERVER"], os.environ["RAMI_HTTP"], os.environ["RAMI_TLS_CA"]
CLI, TMP = os.environ["RAMI_CLI"], os.environ["TLS_TEST_TMP"]
failures = []


def check(name, ok, detail=""):
    print(f"{'ok' if ok else 'FAIL'}: {name}{': ' + detail if detail and not ok else ''}")
    if not ok:
        failures.append(name)


def completion(ca):
    client = openai.OpenAI(base_url=HTTP + "/v1", api_key="none", max_retries=0, timeout=30,
                           http_client=httpx.Client(verify=ca))
    return client.completions.create(model="qwen3_dms", prompt="Hi", max_tokens=4, seed=1)


def refused(fn):
    try:
        fn()
    except (openai.APIConnectionError, httpx.HTTPError) as e:
        return True, repr(e)
    return False, "it succeeded"


def cli_info(ca):
    env = dict(os.environ, RAMI_TLS_CA=ca)
    return subprocess.run([CLI, "info", f"--server={SERVER}"], env=env, capture_output=True,
                          text=True, timeout=30)


check("HTTPS scheme", HTTP.startswith("https://"), HTTP)
r = completion(CA)
check("openai over HTTPS trusting the CA", len(r.choices) == 1 and r.usage.completion_tokens == 4)
ok, why = refused(lambda: completion(True))  # the system roots: not our CA
check("a client that does not trust the CA is refused", ok, why)
plain = HTTP.replace("https://", "http://")
ok, why = refused(lambda: httpx.get(plain + "/health", timeout=10).raise_for_status())
check("plaintext HTTP to the HTTPS port is refused", ok, why)

info = cli_info(CA)
check("rami info over gRPC with TLS", info.returncode == 0 and "healthyWorkerGroups\": 1" in info.stdout,
      info.stderr)
info = cli_info("")
check("plaintext gRPC to the TLS port is refused",
      info.returncode != 0 and "code 14" in info.stderr, info.stderr + info.stdout)

# Rotation: new files from another CA; HTTPS after SIGHUP, gRPC by its file watcher.
certs, rotated = os.path.join(TMP, "certs"), os.path.join(TMP, "rotated")
for name in ("coordinator.pem", "coordinator.key"):
    shutil.copy(os.path.join(rotated, name), os.path.join(certs, name + ".new"))
    os.replace(os.path.join(certs, name + ".new"), os.path.join(certs, name))
with open(os.path.join(TMP, "logs", "coordinator.pid")) as f:
    os.kill(int(f.read()), signal.SIGHUP)
new_ca = os.path.join(rotated, "ca.pem")
deadline, served = time.time() + 10, False
while time.time() < deadline and not served:
    try:
        served = len(completion(new_ca).choices) == 1
    except openai.APIConnectionError:
        time.sleep(0.2)
check("HTTPS serves the rotated certificate after SIGHUP", served)
ok, why = refused(lambda: completion(CA))
check("the old CA no longer verifies the HTTPS port", ok, why)
deadline, info = time.time() + 10, None
while time.time() < deadline:
    info = cli_info(new_ca)
    if info.returncode == 0:
        break
    time.sleep(0.3)
check("gRPC serves the rotated certificate", info.returncode == 0, info.stderr)

print(f"tls_test: {'FAILED: ' + ', '.join(failures) if failures else 'all checks passed'}")
sys.exit(1 if failures else 0)
