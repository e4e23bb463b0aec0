"""Reference figures for `bench encoder`, measured in the same run as ours.

    python encoder_reference.py inference SNAPSHOT_DIR TEXTS_JSON SINGLES THREADS WORKDIR
    python encoder_reference.py step SNAPSHOT_DIR TEXTS_JSON STEPS THREADS BATCH MAX_LEN

`inference`: all-MiniLM-L6-v2 exported from the local snapshot to ONNX with torch.onnx,
run by ONNX Runtime in fp32 and dynamically quantized to int8, plus PyTorch itself:
single-text latency (median over the first SINGLES texts), batches of 32 in file order, and
batches of 32 sorted by length (texts/s). Mean pooling + L2 normalisation, 128 tokens, as
the tagger embeds. `step`: the median time of a PyTorch fine-tuning step (encoder + linear
head, AdamW, dropout on), batches of BATCH texts cut at MAX_LEN tokens.

Prints one JSON object on the last line of stdout. Needs torch, transformers, onnx,
onnxruntime and tokenizers (all from PyPI); exits with status 3 when one is missing.
"""

import json
import os
import random
import statistics
import sys
import time


def need(*modules):
    missing = []
    for module in modules:
        try:
            __import__(module)
        except Exception as error:  # ImportError, or a library that fails to load
            missing.append(f"{module} ({error.__class__.__name__}: {error})")
    if missing:
        print("missing Python packages: " + "; ".join(missing), file=sys.stderr)
        sys.exit(3)


def tokenizer(snapshot, max_len):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(snapshot, "tokenizer.json"))
    # MiniLM's file pads every text to 128: pad per batch instead, as the tagger does.
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    return tok


def encode(tok, texts):
    import numpy as np

    encodings = tok.encode_batch(texts)
    length = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(texts), length), dtype=np.int64)
    mask = np.zeros((len(texts), length), dtype=np.int64)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    return ids, mask


def pool(states, mask):
    import numpy as np

    weights = mask[:, :, None].astype(np.float32)
    pooled = (states * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def measure(embed, texts, singles):
    """Median single-text latency (ms), then texts/s in file order and sorted by length."""
    for text in texts[:8]:  # warm-up
        embed([text])
    latencies = []
    for text in texts[:singles]:
        started = time.perf_counter()
        embed([text])
        latencies.append(time.perf_counter() - started)
    started = time.perf_counter()
    for i in range(0, len(texts), 32):
        embed(texts[i : i + 32])
    file_order = len(texts) / (time.perf_counter() - started)
    by_length = sorted(texts, key=len, reverse=True)
    started = time.perf_counter()
    for i in range(0, len(by_length), 32):
        embed(by_length[i : i + 32])
    sorted_order = len(texts) / (time.perf_counter() - started)
    return {
        "single_ms": statistics.median(latencies) * 1000.0,
        "file_order_per_s": file_order,
        "sorted_per_s": sorted_order,
    }


def inference(snapshot, texts, singles, threads, workdir):
    need("numpy", "torch", "transformers", "onnx", "onnxruntime", "tokenizers")
    import numpy as np
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    torch.set_num_threads(threads)
    tok = tokenizer(snapshot, 128)
    model = AutoModel.from_pretrained(snapshot).eval()
    fp32 = os.path.join(workdir, "minilm.onnx")
    int8 = os.path.join(workdir, "minilm-int8.onnx")
    # Traced with padding in the batch and eager attention: with a mask of all ones the
    # SDPA path drops the mask, and the exported graph would then ignore padding.
    exported = AutoModel.from_pretrained(snapshot, attn_implementation="eager").eval()
    ids, mask = encode(tok, ["an example to trace the graph with", "a shorter one"])

    class Keywords(torch.nn.Module):
        # The exporter passes inputs by position; BertModel's forward wants them by name.
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    with torch.no_grad():
        torch.onnx.export(
            Keywords(exported),
            (torch.from_numpy(ids), torch.from_numpy(mask)),
            fp32,
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "length"},
                "attention_mask": {0: "batch", 1: "length"},
                "last_hidden_state": {0: "batch", 1: "length"},
            },
            opset_version=17,
            dynamo=False,
        )
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
    results = {"versions": {"torch": torch.__version__, "onnxruntime": ort.__version__}}

    def session(path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Passive waiting: spinning threads lose badly when another process holds a core.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    reference = None
    for name, path in [("onnxruntime_fp32", fp32), ("onnxruntime_int8", int8)]:
        sess = session(path)

        def embed(batch, sess=sess):
            ids, mask = encode(tok, batch)
            (states,) = sess.run(None, {"input_ids": ids, "attention_mask": mask})
            return pool(states, mask)

        results[name] = measure(embed, texts, singles)
        sample = embed(texts[:32])
        if reference is None:
            reference = sample
        results[name]["max_abs_diff_vs_fp32"] = float(np.abs(sample - reference).max())
        results[name]["first"] = sample[0].tolist()

    def embed_torch(batch):
        ids, mask = encode(tok, batch)
        with torch.inference_mode():
            states = model(
                input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
            ).last_hidden_state.numpy()
        return pool(states, mask)

    results["pytorch"] = measure(embed_torch, texts, singles)
    results["pytorch"]["max_abs_diff_vs_fp32"] = float(
        np.abs(embed_torch(texts[:32]) - reference).max()
    )
    return results


def step(snapshot, texts, steps, threads, batch, max_len):
    need("torch", "transformers", "tokenizers")
    import torch
    from transformers import AutoModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tok = tokenizer(snapshot, max_len)
    model = AutoModel.from_pretrained(snapshot)
    model.train()
    head = torch.nn.Linear(model.config.hidden_size, 77)
    optimizer = torch.optim.AdamW(
        list(model.parameters()) + list(head.parameters()), lr=5e-5, weight_decay=0.01
    )
    # Batches of similar length, as the tagger's fine-tuning cuts them: shuffled, sorted by
    # length within windows of 50 batches, cut, and the batches shuffled.
    rng = random.Random(0)
    lengths = [len(e.ids) for e in tok.encode_batch(texts)]
    order = list(range(len(texts)))
    rng.shuffle(order)
    batches = []
    for start in range(0, len(order), batch * 50):
        window = sorted(order[start : start + batch * 50], key=lambda i: lengths[i])
        batches += [window[j : j + batch] for j in range(0, len(window), batch)]
    rng.shuffle(batches)
    times, tokens = [], []
    for index in range(steps + 2):
        chunk = [texts[i] for i in batches[index % len(batches)]]
        ids, mask = encode(tok, chunk)
        labels = torch.randint(0, 77, (len(chunk),))
        started = time.perf_counter()
        ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
        states = model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
        weights = mask_t.unsqueeze(-1).float()
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        loss = torch.nn.functional.cross_entropy(head(pooled), labels)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.parameters()) + list(head.parameters()), 1.0)
        optimizer.step()
        if index >= 2:  # the first steps allocate
            times.append(time.perf_counter() - started)
            tokens.append(ids.shape[1])
    return {
        "versions": {"torch": torch.__version__},
        "step_seconds_median": statistics.median(times),
        "steps": len(times),
        "padded_length_mean": sum(tokens) / len(tokens),
    }


def main():
    mode, snapshot, texts_file = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(texts_file, encoding="utf-8") as handle:
        texts = json.load(handle)
    if mode == "inference":
        singles, threads, workdir = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
        result = inference(snapshot, texts, singles, threads, workdir)
    elif mode == "step":
        steps, threads, batch, max_len = map(int, sys.argv[4:8])
        result = step(snapshot, texts, steps, threads, batch, max_len)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
