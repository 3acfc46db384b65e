// The chat page's behaviour. It talks to the server's documented routes only:
//   GET /v1/models             the model picker (each card's "task" says chat or classify)
//   POST /v1/chat/completions  streamed replies (server-sent events), stopped by aborting the request
//   POST /v1/classify          a chapter 6 classifier's label and probability
// Text from the model is always inserted as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const els = {
  model: $("model"), mode: $("mode"), log: $("log"), status: $("status"), form: $("composer"),
  prompt: $("prompt"), promptLabel: $("prompt-label"), send: $("send"), stop: $("stop"), reset: $("reset"),
  system: $("system"), temperature: $("temperature"), topK: $("top-k"), topP: $("top-p"),
  maxTokens: $("max-tokens"), apiKey: $("api-key"), template: $("message-template"),
};

let history = [];       // the conversation so far: {role, content}
let controller = null;  // the AbortController of the reply being streamed

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = els.apiKey.value.trim();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

function setStatus(text) { els.status.textContent = text; }

async function errorText(response) {
  try {
    const body = await response.json();
    const error = body.error;
    return typeof error === "string" ? error : (error && error.message) || `HTTP ${response.status}`;
  } catch (_) {
    return `HTTP ${response.status}`;
  }
}

function task() {
  const option = els.model.selectedOptions[0];
  return option ? option.dataset.task : "chat";
}

function showMode() {
  const classify = task() === "classify";
  document.body.classList.toggle("classify", classify);
  els.mode.textContent = classify ? "spam classifier" : "";
  els.promptLabel.textContent = classify ? "Message to classify" : "Message";
  els.send.textContent = classify ? "Classify" : "Send";
  els.prompt.placeholder = classify
    ? "Paste a text message. Enter classifies it, Shift+Enter starts a new line."
    : "Type a message. Enter sends, Shift+Enter starts a new line.";
  els.stop.hidden = classify;
}

async function loadModels() {
  setStatus("Loading models…");
  let response;
  try {
    response = await fetch("/v1/models", { headers: headers() });
  } catch (err) {
    setStatus(`The server cannot be reached: ${err.message}`);
    return;
  }
  if (response.status === 401) {
    setStatus("This server needs an API key: enter it under Settings.");
    return;
  }
  if (!response.ok) {
    setStatus(`Could not list the models: ${await errorText(response)}`);
    return;
  }
  const cards = (await response.json()).data;
  els.model.replaceChildren(...cards.map((card) => {
    const option = document.createElement("option");
    option.value = card.id;
    option.textContent = card.id;
    option.dataset.task = card.task || "chat";
    return option;
  }));
  showMode();
  setStatus(cards.length ? "Ready." : "The server lists no model.");
}

function addMessage(role, text, extraClass) {
  const node = els.template.content.firstElementChild.cloneNode(true);
  node.classList.add(role);
  if (extraClass) node.classList.add(extraClass);
  node.querySelector(".role").textContent = role === "user" ? "You" : role === "assistant" ? "Model" : "Error";
  node.querySelector(".text").textContent = text;
  const copy = node.querySelector(".copy");
  copy.setAttribute("aria-label", `Copy this ${role === "user" ? "message" : "reply"}`);
  copy.addEventListener("click", () => copyText(node.querySelector(".text").textContent, copy));
  els.log.append(node);
  node.scrollIntoView({ block: "end" });
  return node;
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch (_) {
    button.textContent = "Copy failed";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
}

function numberField(input, fallback) {
  const value = Number(input.value);
  return input.value === "" || Number.isNaN(value) ? fallback : value;
}

function chatBody(messages) {
  const body = {
    model: els.model.value, messages, stream: true, stream_options: { include_usage: true },
    temperature: numberField(els.temperature, 0), top_p: numberField(els.topP, 1),
  };
  // left empty, the server picks the length: 256 tokens, or what the model's context has room for
  const maxTokens = numberField(els.maxTokens, null);
  if (maxTokens !== null) body.max_tokens = Math.max(1, Math.round(maxTokens));
  const topK = Math.round(numberField(els.topK, 0));
  if (topK > 0) body.top_k = topK;
  return body;
}

function busy(on) {
  els.send.disabled = on;
  els.stop.disabled = !on;
}

// Server-sent events arrive in chunks that may cut an event in two: keep the unfinished tail for the next chunk.
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (line.startsWith("data: ")) yield line.slice(6);
      }
    }
  }
}

async function sendChat(text) {
  const messages = [];
  if (els.system.value.trim()) messages.push({ role: "system", content: els.system.value });
  history.push({ role: "user", content: text });
  messages.push(...history);
  addMessage("user", text);
  const reply = addMessage("assistant", "");
  const textNode = reply.querySelector(".text");
  const meta = reply.querySelector(".meta");
  meta.textContent = "thinking…";
  controller = new AbortController();
  busy(true);
  let firstAt = null;  // tokens/s counts from the first token: the prompt's processing is not decoding speed
  let tokens = 0;
  let usageTokens = null;
  let finish = null;
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), body: JSON.stringify(chatBody(messages)), signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorText(response));
    meta.textContent = "writing…";
    for await (const data of events(response)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message || String(chunk.error));
      if (chunk.usage) usageTokens = chunk.usage.completion_tokens;
      const choice = chunk.choices && chunk.choices[0];
      if (!choice) continue;
      if (choice.delta && choice.delta.content) {
        textNode.textContent += choice.delta.content;
        if (firstAt === null) firstAt = performance.now();
        tokens += 1;
        reply.scrollIntoView({ block: "end" });
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    const n = usageTokens ?? tokens;
    const seconds = firstAt === null ? 0 : (performance.now() - firstAt) / 1000;
    const speed = n > 1 && seconds > 0 ? ` · ${((n - 1) / seconds).toFixed(1)} tokens/s` : "";
    meta.textContent = `${n} tokens${speed}${finish === "length" ? " · max tokens reached" : ""}`;
    reply.classList.add("done");
    setStatus("Ready.");
  } catch (err) {
    if (err.name === "AbortError") {
      meta.textContent = `stopped after ${tokens} tokens`;
      reply.classList.add("stopped");
      setStatus("Stopped.");
    } else {
      reply.classList.add("error");
      meta.textContent = "failed";
      setStatus(`The reply failed: ${err.message}`);
      if (!textNode.textContent) textNode.textContent = err.message;
      history.pop();  // the turn without an answer is not part of the conversation
      controller = null;
      busy(false);
      return;
    }
  }
  history.push({ role: "assistant", content: textNode.textContent });
  controller = null;
  busy(false);
}

async function classify(text) {
  addMessage("user", text);
  busy(true);
  els.stop.disabled = true;
  try {
    const response = await fetch("/v1/classify", {
      method: "POST", headers: headers(), body: JSON.stringify({ model: els.model.value, input: text }),
    });
    if (!response.ok) throw new Error(await errorText(response));
    const result = await response.json();
    const node = addMessage("assistant", "");
    const label = document.createElement("span");
    label.className = result.label === "spam" ? "label-spam" : "label-ham";
    label.textContent = result.label;
    node.querySelector(".text").replaceChildren(label, ` (probability ${(100 * result.probability).toFixed(1)}%)`);
    node.querySelector(".meta").textContent = "classifier";
    node.classList.add("done");
    setStatus("Ready.");
  } catch (err) {
    addMessage("error", err.message, "error");
    setStatus(`Classification failed: ${err.message}`);
  } finally {
    busy(false);
  }
}

function submit() {
  const text = els.prompt.value;
  if (!text.trim() || controller) return;
  els.prompt.value = "";
  if (task() === "classify") classify(text);
  else sendChat(text);
}

els.form.addEventListener("submit", (event) => { event.preventDefault(); submit(); });
els.prompt.addEventListener("keydown", (event) => {
  // Enter sends, Shift+Enter breaks the line; an input method still composing a character keeps its Enter
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit();
  }
});
els.stop.addEventListener("click", () => { if (controller) controller.abort(); });
els.reset.addEventListener("click", () => {
  if (controller) controller.abort();
  history = [];
  els.log.replaceChildren();
  setStatus("Conversation cleared.");
  els.prompt.focus();
});
els.model.addEventListener("change", () => { history = []; els.log.replaceChildren(); showMode(); });
els.apiKey.addEventListener("change", loadModels);

loadModels();
