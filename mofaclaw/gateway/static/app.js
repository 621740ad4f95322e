// mofaclaw web chat. The agent's words are untrusted: while they stream they are shown as plain text
// (textContent), and once a reply is complete the gateway renders it to sanitized HTML (/v1/render).
// The API key lives in sessionStorage only and travels only in the Authorization header.
"use strict";

const KEY_STORE = "mofaclaw.apiKey";
const THEME_STORE = "mofaclaw.theme";
const $ = (id) => document.getElementById(id);

const state = {
  model: "mofaclaw",
  current: null,        // the open conversation's id, or null for a new chat not yet sent
  conversations: [],
  turn: null,           // {controller, stopped} while a reply streams
};

// ---- HTTP -----------------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch (_) { /* not JSON: keep the status line */ }
  return new HttpError(response.status, message);
}

async function api(method, path, body, signal) {
  let response;
  try {
    response = await fetch(path, { method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body),
                                   signal, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new HttpError(0, "Cannot reach the gateway: is mofaclaw gateway still running?");
  }
  if (response.status === 401) { askForKey("That API key was not accepted; enter one of gateway.api_keys."); }
  if (!response.ok) throw await failure(response);
  return response;
}

async function json(method, path, body) {
  return (await api(method, path, body)).json();
}

// ---- sign in --------------------------------------------------------------------------------------

function askForKey(message) {
  sessionStorage.removeItem(KEY_STORE);
  $("signin").hidden = false;
  $("chat").hidden = true;
  $("signin-error").textContent = message || "";
  $("api-key").value = "";
  $("api-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORE, key);
  $("api-key").value = "";
  await start();
}

async function start() {
  const needsKey = document.querySelector('meta[name="mofaclaw-auth"]').content === "required";
  if (needsKey && !sessionStorage.getItem(KEY_STORE)) { askForKey(""); return; }
  try {
    const models = await json("GET", "/v1/models");
    if (models.data && models.data.length) state.model = models.data[0].id;
  } catch (err) {
    if (err.status === 401) return;  // askForKey already shows why
    if (err.status === 429) { askForKey(err.message); return; }
    $("chat").hidden = false;
    showError($("log"), err.message);
    return;
  }
  $("signin").hidden = true;
  await refreshList();
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (wanted && state.conversations.some((c) => c.id === wanted)) await openConversation(wanted);
  else newChat();
  $("chat").hidden = false;  // only now: a message typed earlier would be cleared by the opening above
  $("input").focus();
}

// ---- conversations --------------------------------------------------------------------------------

async function refreshList() {
  try {
    state.conversations = (await json("GET", "/v1/conversations")).data;
  } catch (err) {
    if (err.status !== 401) showError($("log"), "Could not load the conversations: " + err.message);
    return;
  }
  const list = $("conversation-list");
  list.replaceChildren(...state.conversations.map(conversationItem));
}

function conversationItem(conversation) {
  const item = document.createElement("li");
  item.dataset.id = conversation.id;
  const open = button(conversation.title, "open", () => openConversation(conversation.id));
  open.title = conversation.title;
  if (conversation.id === state.current) {
    item.classList.add("current");
    open.setAttribute("aria-current", "page");
  }
  const rename = button("✎", "small", () => startRename(item, conversation));
  rename.setAttribute("aria-label", `Rename “${conversation.title}”`);
  const remove = button("×", "small", () => removeConversation(conversation));
  remove.setAttribute("aria-label", `Delete “${conversation.title}”`);
  item.append(open, rename, remove);
  return item;
}

function button(text, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

function startRename(item, conversation) {
  const input = document.createElement("input");
  input.value = conversation.title;
  input.setAttribute("aria-label", "New title (Enter saves, Escape cancels)");
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    if (save && input.value.trim() && input.value.trim() !== conversation.title) {
      try {
        await json("POST", `/v1/conversations/${encodeURIComponent(conversation.id)}`, { title: input.value.trim() });
      } catch (err) { showError($("log"), "Could not rename: " + err.message); }
    }
    await refreshList();
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); finish(true); }
    if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); finish(false); }
  });
  input.addEventListener("blur", () => finish(true));
  item.replaceChildren(input);
  input.focus();
  input.select();
}

async function removeConversation(conversation) {
  if (!window.confirm(`Delete “${conversation.title}”? This cannot be undone.`)) return;
  try {
    await json("DELETE", `/v1/conversations/${encodeURIComponent(conversation.id)}`);
  } catch (err) { showError($("log"), "Could not delete: " + err.message); return; }
  if (conversation.id === state.current) newChat();
  await refreshList();
}

function newChat() {
  stopTurn();
  state.current = null;
  history.replaceState(null, "", location.pathname);
  $("log").replaceChildren();
  markCurrent();
  closeSidebar();
  $("input").focus();
}

function markCurrent() {
  for (const item of $("conversation-list").children) {
    const current = item.dataset.id === state.current;
    item.classList.toggle("current", current);
    const open = item.querySelector(".open");
    if (open) { if (current) open.setAttribute("aria-current", "page"); else open.removeAttribute("aria-current"); }
  }
}

async function openConversation(id) {
  stopTurn();
  state.current = id;
  history.replaceState(null, "", "#" + encodeURIComponent(id));
  markCurrent();
  closeSidebar();
  const log = $("log");
  log.replaceChildren();
  let items = [];
  try {
    let after = null;
    for (;;) {
      const query = `?order=asc&limit=100${after ? "&after=" + encodeURIComponent(after) : ""}`;
      const page = await json("GET", `/v1/conversations/${encodeURIComponent(id)}/items${query}`);
      items = items.concat(page.data);
      if (!page.has_more) break;
      after = page.last_id;
    }
  } catch (err) { showError(log, "Could not open the conversation: " + err.message); return; }
  if (state.current !== id) return;  // another conversation was opened meanwhile
  const answers = [];
  let assistant = null;
  for (const item of items) {
    if (item.type === "message" && item.role === "user") {
      addMessage("user", item.content.map((p) => p.text).join("\n"));
      assistant = null;
    } else if (item.type === "function_call") {
      assistant = assistant || addMessage("assistant", "");
      addToolLine(assistant, item.name, summarize(item.arguments));
    } else if (item.type === "message" && item.role === "assistant") {
      assistant = assistant || addMessage("assistant", "");
      answers.push([assistant, item.content.map((p) => p.text).join("\n")]);
      assistant = null;
    }
  }
  await renderInto(answers);
  scrollDown();
}

// The same short summary the server sends with progress events: the first scalar argument.
function summarize(argumentsJson) {
  let args = {};
  try { args = JSON.parse(argumentsJson) || {}; } catch (_) { return ""; }
  const first = Object.values(args).find((v) => ["string", "number"].includes(typeof v));
  const text = first === undefined ? "" : String(first).replace(/\n/g, " ");
  return text.length > 60 ? text.slice(0, 57) + "..." : text;
}

// ---- messages -------------------------------------------------------------------------------------

function addMessage(role, text) {
  const message = document.createElement("div");
  message.className = "msg " + role;
  const who = document.createElement("div");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "mofaclaw";
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = text;
  message.append(who, body);
  $("log").append(message);
  scrollDown();
  return message;
}

function addToolLine(message, name, summary) {
  let tools = message.querySelector(".tools");
  if (!tools) {
    tools = document.createElement("ul");
    tools.className = "tools";
    tools.setAttribute("aria-label", "Tools run");
    message.querySelector(".body").before(tools);
  }
  const line = document.createElement("li");
  const code = document.createElement("code");
  code.textContent = name;
  line.append("↳ ", code, summary ? " " + summary : "");
  tools.append(line);
  scrollDown();
}

function showError(container, text) {
  const line = document.createElement("p");
  line.className = "error";
  line.setAttribute("role", "alert");
  const short = text.length > 200 ? text.slice(0, 197) + "..." : text;
  line.textContent = "Error: " + short;
  line.title = text;
  container.append(line);
  scrollDown();
}

function note(container, text) {
  const line = document.createElement("p");
  line.className = "note";
  line.textContent = text;
  container.append(line);
}

async function renderInto(pairs) {
  if (!pairs.length) return;
  let html;
  try {
    html = (await json("POST", "/v1/render", { texts: pairs.map(([, text]) => text) })).html;
  } catch (err) {
    for (const [message, text] of pairs) message.querySelector(".body").textContent = text;
    return;
  }
  pairs.forEach(([message], i) => {
    const body = message.querySelector(".body");
    body.classList.remove("streaming");
    body.innerHTML = html[i];  // sanitized by the gateway (nh3); the CSP forbids inline script as well
    addCopyButtons(body);
  });
}

function addCopyButtons(body) {
  for (const pre of body.querySelectorAll("pre")) {
    const wrapper = document.createElement("div");
    wrapper.className = "codeblock";
    pre.before(wrapper);
    const copy = button("Copy", "copy", () => copyText(pre.textContent, copy));
    copy.setAttribute("aria-label", "Copy code");
    wrapper.append(pre, copy);
  }
}

async function copyText(text, control) {
  try {
    await navigator.clipboard.writeText(text);
    control.textContent = "Copied";
  } catch (_) {
    control.textContent = "Copy failed";
  }
  setTimeout(() => { control.textContent = "Copy"; }, 1500);
}

function scrollDown() {
  const log = $("log");
  log.scrollTop = log.scrollHeight;
}

// ---- a turn -------------------------------------------------------------------------------------

async function send(event) {
  if (event) event.preventDefault();
  const input = $("input");
  const text = input.value.trim();
  if (!text || state.turn) return;
  input.value = "";
  const turn = { controller: new AbortController(), stopped: false };
  state.turn = turn;
  setBusy(true);
  addMessage("user", text);
  const message = addMessage("assistant", "");
  const body = message.querySelector(".body");
  body.classList.add("streaming");
  message.setAttribute("aria-busy", "true");
  let answer = "";
  let finished = false;
  try {
    if (!state.current) {
      state.current = (await json("POST", "/v1/conversations", {})).id;
      history.replaceState(null, "", "#" + encodeURIComponent(state.current));
    }
    const response = await api("POST", "/v1/chat/completions", {
      model: state.model, stream: true, stream_options: { include_progress: true },
      conversation_id: state.current, messages: [{ role: "user", content: text }],
    }, turn.controller.signal);
    for await (const [name, data] of events(response.body)) {
      if (data === "[DONE]") { finished = true; break; }
      const payload = JSON.parse(data);
      if (name === "progress") { addToolLine(message, payload.tool, payload.summary); continue; }
      if (payload.error) { showError(message, payload.error.message); finished = true; break; }
      const delta = payload.choices && payload.choices[0] && payload.choices[0].delta;
      if (delta && delta.content) {
        answer += delta.content;
        body.textContent = answer;
        scrollDown();
      }
    }
    if (answer) await renderInto([[message, answer]]);
    if (!finished && !turn.stopped) showError(message, "The connection to the gateway closed before the reply ended.");
  } catch (err) {
    if (err.name === "AbortError" || turn.stopped) note(message, "Stopped. This reply was not saved.");
    else if (err.status !== 401) showError(message, err.message);
  } finally {
    message.removeAttribute("aria-busy");
    body.classList.remove("streaming");
    if (state.turn === turn) state.turn = null;
    setBusy(false);
    refreshList();
  }
}

// Server-Sent Events from a fetch body: yields [event name, data] pairs.
async function* events(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield [name, data.join("\n")];
    }
  }
}

function stopTurn() {
  if (!state.turn) return;
  state.turn.stopped = true;
  state.turn.controller.abort();  // closing the stream cancels the turn on the gateway, and its upstream call
}

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  if (busy) $("stop").focus(); else $("input").focus();
}

// ---- layout, theme, keys ------------------------------------------------------------------------------

function closeSidebar() {
  $("sidebar").classList.remove("open");
  $("toggle-sidebar").setAttribute("aria-expanded", "false");
}

function toggleSidebar() {
  const open = $("sidebar").classList.toggle("open");
  $("toggle-sidebar").setAttribute("aria-expanded", String(open));
}

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  const dark = theme ? theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  $("theme").setAttribute("aria-label", dark ? "Use light theme" : "Use dark theme");
}

function toggleTheme() {
  const dark = $("theme").getAttribute("aria-label") === "Use dark theme";
  const theme = dark ? "dark" : "light";
  localStorage.setItem(THEME_STORE, theme);
  applyTheme(theme);
}

function onKey(event) {
  if (event.key === "Escape" && state.turn) { event.preventDefault(); stopTurn(); }
}

function onComposerKey(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) send(event);
}

document.addEventListener("DOMContentLoaded", () => {
  applyTheme(localStorage.getItem(THEME_STORE));
  $("signin").addEventListener("submit", signIn);
  $("composer").addEventListener("submit", send);
  $("input").addEventListener("keydown", onComposerKey);
  $("stop").addEventListener("click", stopTurn);
  $("new-chat").addEventListener("click", newChat);
  $("theme").addEventListener("click", toggleTheme);
  $("toggle-sidebar").addEventListener("click", toggleSidebar);
  document.addEventListener("keydown", onKey);
  start();
});
